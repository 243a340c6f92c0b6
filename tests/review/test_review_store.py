"""The review database and what comes out of it: judgments kept, one per person and clip, pairs, Label Studio."""

from __future__ import annotations

import json
import sqlite3

import pytest

from review_fixtures import make_review_data
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.errors import UserInputError
from rlhf_asr.review.clips import fingerprint, read_clips
from rlhf_asr.review.diff import marked_words
from rlhf_asr.review.export import export_pairs, preference_rows
from rlhf_asr.review.labelstudio import pairs_from_tasks, to_tasks
from rlhf_asr.review.store import AlreadyJudged, BadJudgment, ReviewStore


@pytest.fixture
def data(tmp_path):
    return make_review_data(tmp_path)


def test_judgments_survive_reopening_and_each_annotator_resumes(data):
    manifest, db = data
    store = ReviewStore(db)
    assert store.next_clip("ann") == 1
    store.judge("ann", 1, "choose", rank=1)
    assert store.next_clip("ann") == 2
    store.judge("ann", 2, "skip")
    reopened = ReviewStore(db)  # a new process would see the same
    assert [(j.clip_id, j.action, j.text) for j in reopened.live_judgments("ann")] == [
        (1, "choose", "clip 1 won"),
        (2, "skip", ""),
    ]
    assert reopened.next_clip("ann") == 3
    assert reopened.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_one_live_judgment_per_person_and_clip(data):
    store = ReviewStore(data[1])
    store.judge("ann", 1, "choose", rank=0)
    with pytest.raises(AlreadyJudged):
        store.judge("ann", 1, "correct", text="again")
    with pytest.raises(BadJudgment):
        store.judge("ann", 2, "choose", rank=7)
    with pytest.raises(BadJudgment):
        store.judge("ann", 2, "correct", text="   ")
    with pytest.raises(KeyError):
        store.judge("ann", 99, "skip")
    assert len(store.live_judgments()) == 1


def test_undo_brings_the_clip_back_and_keeps_the_history(data):
    store = ReviewStore(data[1])
    store.judge("ann", 1, "choose", rank=0)
    store.judge("ann", 2, "no_speech")
    assert store.next_clip("ann") == 3
    assert store.undo("ann") == 2
    assert store.next_clip("ann") == 2  # the undone clip first, though clip 3 was already shown
    assert ReviewStore(data[1]).next_clip("ann") == 2  # also after a restart
    store.judge("ann", 2, "correct", text="  clip two  ")
    rows = store.connection().execute("SELECT action, text, undone_at IS NOT NULL FROM judgments ORDER BY id")
    assert [tuple(r) for r in rows] == [("choose", "clip 1 one", 0), ("no_speech", "", 1), ("correct", "clip two", 0)]


def test_annotators_are_shown_different_clips_and_agreement_is_counted(data):
    store = ReviewStore(data[1])
    assert (store.next_clip("a"), store.next_clip("b")) == (1, 2)  # held: not both on clip 1
    assert store.next_clip("a") == 1  # asking again keeps one's clip
    both = ReviewStore(data[1])
    for name in ("a", "b"):
        for clip in (1, 2, 3):
            both.judge(name, clip, "choose", rank=0 if clip != 3 or name == "a" else 1)
    both.judge("c", 1, "skip")  # a skip is no opinion: it neither agrees nor disagrees
    progress = both.progress(judges_per_clip=2)
    assert progress["agreement"] == {"clips": 3, "agreeing": 2}
    assert progress["done"] == 3 and progress["annotators"]["a"]["judged"] == 3
    assert both.next_clip("a", judges_per_clip=2) == 4


def test_a_database_of_another_dataset_is_refused(tmp_path, data):
    manifest, db = data
    other = tmp_path / "other.jsonl"
    other.write_text(manifest.read_text().replace("clip 2 1", "clip 2 changed"))
    clips = read_clips(other)
    with pytest.raises(UserInputError, match="made for another dataset"):
        ReviewStore(db).attach_dataset(clips, fingerprint(clips, other), str(other))
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 50)
    with pytest.raises(UserInputError, match="not a review database"):
        ReviewStore(tmp_path / "junk.sqlite")


def test_manifests_with_and_without_references_and_preference_manifests(tmp_path, data):
    manifest, _ = data
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({"audio": row["audio"]}) + "\n" for row in rows))
    assert [clip.texts for clip in read_clips(bare)] == [()] * 6
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({**rows[0], "chosen": "a b", "rejected": "a c"}) + "\n")
    assert read_clips(pairs)[0].texts == (("chosen", "a b"), ("rejected", "a c"))
    bare.write_text(json.dumps({"audio": {"path": "missing.wav"}}) + "\n")
    with pytest.raises(UserInputError, match=r"bare.jsonl:1: audio file missing"):
        read_clips(bare)


def test_export_chosen_and_rejected(data):
    manifest, db = data
    store = ReviewStore(db)
    store.judge("ann", 1, "choose", rank=0)  # the model's top: no pair with rejected=top
    store.judge("ann", 2, "choose", rank=2)  # the reference
    store.judge("ann", 3, "correct", text="a new text")
    store.judge("ann", 4, "no_speech")
    store.judge("ann", 5, "skip")
    rows, left_out = preference_rows(store, "top")
    assert [(r["chosen"], r["rejected"], r["action"], r["annotator"]) for r in rows] == [
        ("clip 2 1", "clip 2 one", "choose", "ann"),
        ("a new text", "clip 3 one", "correct", "ann"),
        ("", "clip 4 one", "no_speech", "ann"),
    ]
    assert left_out == {"chosen is the model's top candidate": 1, "skipped": 1}
    every = [(r["chosen"], r["rejected"], r["rejected_by"]) for r in preference_rows(store, "all")[0]]
    assert every[:2] == [("clip 1 one", "clip 1 won", "model"), ("clip 1 one", "clip 1 1", "reference")]
    assert len(every) == 2 + 2 + 3 + 3
    out = export_pairs(store, db.parent / "pairs.jsonl")
    assert out["rows"] == 3
    # what `rlhf-asr train` reads: every row passes its checks, "no speech" as a no-speech pair
    report = read_preference_manifest(db.parent / "pairs.jsonl")
    assert [(e.chosen, e.no_speech) for e in report.examples] == [
        ("clip 2 1", False),
        ("a new text", False),
        ("", True),
    ]
    assert report.skipped == []


def test_label_studio_tasks_round_trip_to_the_same_pairs(data, tmp_path):
    store = ReviewStore(data[1])
    store.judge("ann", 2, "choose", rank=1)
    store.judge("bob", 3, "correct", text="fixed text")
    tasks = to_tasks(store)
    assert len(tasks) == 6 and tasks[1]["data"]["transcriptions"][1] == {"value": "clip 2 won"}
    assert tasks[1]["annotations"][0]["result"][0]["value"] == {"choices": ["clip 2 won"]}
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    ours = [(r["chosen"], r["rejected"], r["annotator"], r["duration"]) for r in preference_rows(store, "all")[0]]
    theirs = [(r["chosen"], r["rejected"], r["annotator"], r["duration"]) for r in pairs_from_tasks(path, "all")]
    assert theirs == ours
    path.write_text('{"not": "a list"}')
    with pytest.raises(UserInputError, match="list of tasks"):
        pairs_from_tasks(path)


def test_differing_words_are_marked():
    marks = marked_words(["the cat sat", "the cat sad", "a cat sat"])
    assert marks == [
        [("the", False), ("cat", False), ("sat", True)],
        [("the", False), ("cat", False), ("sad", True)],
        [("a", True), ("cat", False), ("sat", False)],
    ]
    assert marked_words(["only one"]) == [[("only", False), ("one", False)]]


def test_a_judgment_is_committed_when_judge_returns(data):
    """Read back through a separate plain sqlite3 connection: nothing waits in a buffer of ours."""
    store = ReviewStore(data[1])
    store.judge("ann", 1, "correct", text="kept")
    other = sqlite3.connect(data[1])
    assert other.execute("SELECT text FROM judgments").fetchall() == [("kept",)]


def test_undoing_a_skip_does_not_take_a_clip_someone_else_holds(data):
    """Found by the load check: a's undo of a skip took back clip 1 while b was on it, and both judged it."""
    store = ReviewStore(data[1])
    assert store.next_clip("a") == 1
    store.judge("a", 1, "skip")
    assert store.next_clip("a") == 2
    assert store.next_clip("b") == 1  # skipped by a: open to others
    assert store.undo("a") == 1
    assert store.next_clip("a") == 2  # b holds clip 1
    store.judge("b", 1, "choose", rank=0)
    assert store.next_clip("a") == 2
