"""A small load check: several annotators against one server process, nothing lost or doubled."""

from __future__ import annotations

import json

from rlhf_asr.review.loadcheck import _verify, run_loadcheck
from rlhf_asr.review.store import ReviewStore


def test_concurrent_annotators_lose_and_double_nothing(tmp_path):
    raw = run_loadcheck(tmp_path / "raw.json", clips=400, annotators=3, judgments=25, workdir=str(tmp_path / "w"))
    summary = raw["summary"]
    assert summary["ok"], summary
    assert summary["judgments_saved"] > 60 and summary["next_clip_ms"]["requests"] == 75
    assert (summary["lost"], summary["duplicated"], summary["unexpected"], summary["shared_clips"]) == (0, 0, 0, 0)
    assert json.loads((tmp_path / "raw.json").read_text())["summary"] == summary


def test_the_check_sees_a_lost_judgment(tmp_path):
    """A check that cannot fail is no check: a judgment the client was told about but the DB lacks counts as lost."""
    run_loadcheck(tmp_path / "raw.json", clips=50, annotators=1, judgments=5, workdir=str(tmp_path / "w"))
    store = ReviewStore(tmp_path / "w" / "review.sqlite")

    class Client:
        name = "annotator1"
        saved = {j.clip_id: j.action for j in store.live_judgments("annotator1")}

    assert _verify(store, [Client])["lost"] == 0
    Client.saved[49] = "choose"  # told saved, never stored
    store.judge("annotator1", 50, "skip")  # stored, never told
    assert _verify(store, [Client]) == {"lost": 1, "duplicated": 0, "unexpected": 1, "shared_clips": 0}
