"""make-pairs end to end (pairs/mine.py): valid preference rows from a model's mistakes, loop pairs,
resume, skipped and corrupted correct utterances, sampling, the command. The choice of one
utterance's rejected is tests/pairs/test_choice.py; the corruption's edits, test_corruption.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mining_fixtures import TEXTS, mining_setup

from rlhf_asr.commands import cli
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.evaluation.normalize import normalize_text
from rlhf_asr.evaluation.repetition import has_repetition_loop
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.pairs import mine, mine_pairs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return mining_setup(tmp_path_factory.mktemp("pairs"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mined_rows_are_valid_training_rows(setup, tmp_path):
    root, _, model, processor = setup
    output = root / "mined.jsonl"  # beside the audio: paths stay relative
    summary = mine_pairs(
        model,
        processor,
        root / "asr.jsonl",
        output,
        num_candidates=3,
        batch_size=3,
        resume=False,
        model_name="tiny-random",
    )
    assert summary["written"] == summary["mined"] == 4 and summary["skipped_correct"] == 0
    rows = _rows(output)
    assert [r["chosen"] for r in rows] == TEXTS
    for row in rows:
        assert row["rejected"] != row["chosen"] and row["rejected_wer"] > 0
        assert row["rejected_by"] == "tiny-random" and row["language"] == "en"
        assert row["audio"]["path"].startswith("wavs/")
    report = read_preference_manifest(output)  # the training reader accepts every row
    assert len(report.examples) == 4 and not report.skipped
    elsewhere = tmp_path / "out" / "pairs.jsonl"
    mine_pairs(model, processor, root / "asr.jsonl", elsewhere, num_candidates=2)
    assert all(Path(r["audio"]["path"]).is_absolute() for r in _rows(elsewhere))


def test_loop_pairs_add_one_loop_row_per_speech_clip(setup, tmp_path):
    root, model_dir, model, processor = setup
    output = tmp_path / "loops.jsonl"
    summary = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2, loop_pairs=True)
    rows = _rows(output)
    loops = [r for r in rows if r["kind"] == "loop"]
    assert summary["loop"] == len(loops) == len(TEXTS) and summary["written"] == len(rows) == summary["mined"] + 4
    assert summary["loops"] == sum(bool(r.get("rejected_loop")) for r in rows if r["kind"] != "loop")
    for row in loops:
        assert has_repetition_loop(row["rejected"], row["chosen"]) and row["rejected_by"] == "loop"
        assert row["rejected_wer"] > 0 and row["chosen"] in TEXTS
    assert len(read_preference_manifest(output).examples) == len(rows)
    assert cli.main(["make-pairs", "--model", str(model_dir), "--data", str(root / "asr.jsonl"), "--output",
                     str(tmp_path / "cli.jsonl"), "--num_candidates", "2", "--loop_pairs"]) == 0  # fmt: skip
    assert sum(r["kind"] == "loop" for r in _rows(tmp_path / "cli.jsonl")) == len(TEXTS)


def test_resume_skips_done_rows_and_repairs_a_torn_line(setup, tmp_path):
    root, _, model, processor = setup
    output = tmp_path / "pairs.jsonl"
    first = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2)
    assert first["written"] == 4
    again = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2)
    assert again["written"] == 0 and again["already_done"] == 4
    assert len(_rows(output)) == 4

    # Simulate a run killed mid-write: the last row and its progress entry half written.
    lines = output.read_text().splitlines(keepends=True)
    output.write_text("".join(lines[:3]) + lines[3][:20])
    progress = output.with_name(output.name + ".progress")
    progress_lines = progress.read_text().splitlines(keepends=True)
    progress.write_text("".join(progress_lines[:3]))
    resumed = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=2)
    assert resumed["written"] == 1 and resumed["already_done"] == 3
    rows = _rows(output)
    assert [r["source"] for r in rows] == [f"asr.jsonl:{i}" for i in range(1, 5)]


def _always_right(monkeypatch):
    """Make the 'model' transcribe every utterance perfectly (3 identical candidates)."""
    texts = iter(TEXTS)

    def fake_decode(model, processor, hidden, prefixes, **options):
        return [[Candidate(next(texts), -0.1)] * 3 for _ in range(hidden.shape[0])]

    monkeypatch.setattr(mine, "decode_encoded", fake_decode)


def test_correct_utterances_are_skipped_and_remembered(setup, tmp_path, monkeypatch):
    root, _, model, processor = setup
    _always_right(monkeypatch)
    output = tmp_path / "pairs.jsonl"
    summary = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=3)
    assert summary["skipped_correct"] == 4 and summary["written"] == 0
    assert output.read_text() == ""
    # resumed: nothing is decoded again (fake_decode would run out of texts and fail)
    assert mine_pairs(model, processor, root / "asr.jsonl", output)["already_done"] == 4


def test_corrupt_correct_builds_a_rejected(setup, tmp_path, monkeypatch):
    root, _, model, processor = setup
    _always_right(monkeypatch)
    output = tmp_path / "pairs.jsonl"
    summary = mine_pairs(model, processor, root / "asr.jsonl", output, num_candidates=3, corrupt_correct=True, seed=3)
    assert summary["corrupted"] == summary["written"] == 4
    for row in _rows(output):
        assert normalize_text(row["rejected"]) != normalize_text(row["chosen"])
        assert row["rejected_by"] == "corruption" and row["rejected_wer"] > 0
    assert len(read_preference_manifest(output).examples) == 4


def test_sampling_strategy_and_command(setup, tmp_path, capsys):
    root, model_dir, model, processor = setup
    output = tmp_path / "sampled.jsonl"
    summary = mine_pairs(
        model, processor, root / "asr.jsonl", output, num_candidates=2, strategy="sample", negative="random", seed=1
    )
    assert summary["written"] == 4
    code = cli.main(
        [
            "make-pairs",
            "--model",
            str(model_dir),
            "--data",
            str(root / "asr.jsonl"),
            "--output",
            str(tmp_path / "cli.jsonl"),
            "--num_candidates",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert "4 pairs written" in capsys.readouterr().err  # a log line (stderr)
    assert len(_rows(tmp_path / "cli.jsonl")) == 4


def test_bad_options_are_user_errors(setup, tmp_path):
    root, _, model, processor = setup
    from rlhf_asr.errors import UserInputError

    with pytest.raises(UserInputError, match="strategy"):
        mine_pairs(model, processor, root / "asr.jsonl", tmp_path / "p.jsonl", strategy="greedy")
    with pytest.raises(UserInputError, match="negative"):
        mine_pairs(model, processor, root / "asr.jsonl", tmp_path / "p.jsonl", negative="easiest")
