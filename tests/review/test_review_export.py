"""Issue 22: the export of clips judged by two people, and the command's lines for a bad --db or a busy port."""

from __future__ import annotations

import json
import os
import socket

import pytest

from review_fixtures import make_review_data, write_annotators
from rlhf_asr.commands import cli
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.review.export import export_pairs, preference_rows
from rlhf_asr.review.store import ReviewStore

TOKEN = "alice-token-0123456789"


def _two_judges(db) -> ReviewStore:
    store = ReviewStore(db)
    store.judge("a", 2, "choose", rank=1)  # clip 2: both choose "clip 2 won"
    store.judge("b", 2, "correct", text="Clip  2 WON")  # the same text, case and spacing aside
    store.judge("a", 3, "choose", rank=1)  # clip 3: they disagree
    store.judge("b", 3, "no_speech")
    store.judge("a", 4, "correct", text="only a judged this")  # clip 4: one judge
    return store


def test_agreeing_judges_give_one_row_disagreeing_ones_none(tmp_path):
    store = _two_judges(make_review_data(tmp_path)[1])
    rows, left_out = preference_rows(store)
    assert [(r["source"], r["chosen"], r["rejected"], r["judges"], r["annotators"]) for r in rows] == [
        ("clip 2 (line 2)", "clip 2 won", "clip 2 one", 2, ["a", "b"]),
        ("clip 4 (line 4)", "only a judged this", "clip 4 one", 1, ["a"]),
    ]
    assert left_out["clip(s) where the judges disagree"] == 1
    out = export_pairs(store, tmp_path / "pairs.jsonl")
    assert out["rows"] == 2
    report = read_preference_manifest(tmp_path / "pairs.jsonl")  # what train reads: no "duplicate of line 1"
    assert report.skipped == [] and len(report.examples) == 2


def test_two_identical_judgments_are_one_row_train_reads(tmp_path):
    """The issue's case: both choose the same candidate; train refused the second row ("duplicate of line 1")."""
    store = ReviewStore(make_review_data(tmp_path)[1])
    store.judge("a", 2, "choose", rank=1)
    store.judge("b", 2, "choose", rank=1)
    export_pairs(store, tmp_path / "pairs.jsonl")
    report = read_preference_manifest(tmp_path / "pairs.jsonl")
    assert len(report.examples) == 1 and report.skipped == []


def test_all_rejected_of_agreeing_judges_are_not_duplicated(tmp_path):
    store = _two_judges(make_review_data(tmp_path)[1])
    rows, _ = preference_rows(store, "all")
    keys = [(r["source"], r["chosen"], r["rejected"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 + 3


def test_disagreements_are_kept_when_asked(tmp_path):
    store = _two_judges(make_review_data(tmp_path)[1])
    rows, left_out = preference_rows(store, keep_disagreements=True)
    clip3 = [(r["chosen"], r["judges"], r["annotator"]) for r in rows if r["source"].startswith("clip 3 ")]
    assert clip3 == [("clip 3 won", 1, "a"), ("", 1, "b")]
    assert "clip(s) where the judges disagree" not in left_out


def _run(capsys, *argv):
    code = cli.main(["review", *argv])
    return code, capsys.readouterr().err.strip()


def test_export_command_says_what_disagreed_and_keeps_it_on_request(tmp_path, capsys):
    _, db = make_review_data(tmp_path)
    _two_judges(db)
    out = tmp_path / "p.jsonl"
    code, err = _run(capsys, "export", "--db", str(db), "--output", str(out))
    assert code == 0 and "1 clip(s) where the judges disagree" in err and "--keep_disagreements" in err
    assert len(out.read_text().splitlines()) == 2
    code, err = _run(capsys, "export", "--db", str(db), "--output", str(out), "--keep_disagreements")
    assert code == 0 and len(out.read_text().splitlines()) == 4


def test_a_db_in_a_missing_folder_or_a_folder_as_db_names_it(tmp_path, capsys):
    manifest, db = make_review_data(tmp_path / "d")
    missing = tmp_path / "nowhere" / "review.sqlite"
    code, err = _run(capsys, "serve", "--data", str(manifest), "--db", str(missing))
    assert code == 2 and f"folder {missing.parent} does not exist" in err and "\n" not in err, err
    code, err = _run(capsys, "export", "--db", str(missing), "--output", str(tmp_path / "x.jsonl"))
    assert code == 2 and f"folder {missing.parent} does not exist" in err, err
    code, err = _run(capsys, "export", "--db", str(tmp_path), "--output", str(tmp_path / "x.jsonl"))
    assert code == 2 and "is a folder" in err and "no such file" not in err, err
    code, err = _run(capsys, "serve", "--data", str(manifest), "--db", str(tmp_path))
    assert code == 2 and "is a folder" in err, err


def test_a_db_in_a_read_only_folder_names_the_folder(tmp_path, capsys, monkeypatch):
    manifest, db = make_review_data(tmp_path / "d")
    folder = str(db.parent.absolute())
    real_access = os.access
    # as root (the test machines) chmod does not stop writes: the folder is made to look read-only
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != folder and real_access(path, mode))
    new = db.with_name("new.sqlite")  # serve stops there at "--model is needed" if the folder passed
    for argv in (["serve", "--data", str(manifest), "--db", str(new)], ["export", "--db", str(db), "--output", "x"]):
        code, err = _run(capsys, *argv)
        assert code == 2 and f"folder {folder} is not writable" in err and "not a review database" not in err, err


def test_a_port_in_use_is_found_before_anything_is_decoded(tmp_path, capsys):
    manifest, _ = make_review_data(tmp_path)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        # a new database: candidates would be decoded first (and --model is missing): the port is checked before
        argv = ["serve", "--data", str(manifest), "--db", str(tmp_path / "new.sqlite"), "--port", str(port)]
        code, err = _run(capsys, *argv, "--annotators", str(write_annotators(tmp_path, alice=TOKEN)))
    finally:
        busy.close()
    assert code == 2 and f"--port {port}" in err and "in use" in err and "\n" not in err, err


@pytest.mark.parametrize("rejected", ["top", "all"])
def test_the_export_of_one_judge_per_clip_is_unchanged(tmp_path, rejected):
    store = ReviewStore(make_review_data(tmp_path)[1])
    store.judge("ann", 2, "choose", rank=2)
    store.judge("ann", 3, "no_speech")
    rows, _ = preference_rows(store, rejected)
    assert {r["judges"] for r in rows} == {1} and {r["annotator"] for r in rows} == {"ann"}
    assert len(rows) == (2 if rejected == "top" else 2 + 3)
    assert all(json.dumps(r) for r in rows)


def test_label_studio_judges_are_merged_as_the_database_s(tmp_path):
    from rlhf_asr.review.labelstudio import pairs_from_tasks, to_tasks

    store = _two_judges(make_review_data(tmp_path)[1])
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(to_tasks(store)))
    ours = [(r["chosen"], r["rejected"], r["judges"]) for r in preference_rows(store)[0]]
    assert [(r["chosen"], r["rejected"], r["judges"]) for r in pairs_from_tasks(path)] == ours
    assert len(pairs_from_tasks(path, keep_disagreements=True)) == len(ours) + 2


def test_a_label_studio_text_with_a_control_character_is_refused(tmp_path):
    from rlhf_asr.errors import UserInputError
    from rlhf_asr.review.labelstudio import pairs_from_tasks, to_tasks

    store = ReviewStore(make_review_data(tmp_path)[1])
    store.judge("a", 2, "correct", text="fine")
    tasks = to_tasks(store)
    tasks[1]["annotations"][0]["result"][0]["value"]["text"] = ["bell \x07 here"]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(UserInputError, match=r"ls.json: task 1, annotation 0: .*U\+0007"):
        pairs_from_tasks(path)
