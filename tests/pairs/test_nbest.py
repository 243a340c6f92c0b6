"""make-pairs --nbest K (pairs/nbest.py, rows.py): one K-best row per clip, the reference and up to K
distinct hypotheses with their word errors; what is left out and why; the rows read back for
training; counts; a resumed run writes the same file as an uninterrupted one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from mining_fixtures import TEXTS, mining_setup

from rlhf_asr.commands import cli
from rlhf_asr.data.examples import AsrExample, KBestExample
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.metrics import score_utterance
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.pairs import mine_pairs
from rlhf_asr.pairs.choice import Miner
from rlhf_asr.pairs.nbest import kbest_row
from rlhf_asr.pairs.options import MiningOptions
from rlhf_asr.pairs.progress import progress_path

SPEECH = AsrExample(Path("/out/wavs/a.wav"), 1.23456, "the cat sat on the mat", "en", None, "x.jsonl:1")
SILENCE = AsrExample(Path("/elsewhere/b.wav"), 2.0, "", "en", None, "x.jsonl:2")


def _miner() -> Miner:
    return Miner(object(), random.Random(0), "hardest", False, "m", Path("/out"), {"words": [], "chars": []})


def test_a_kbest_row_is_the_reference_then_the_first_k_distinct_hypotheses_with_their_word_errors():
    found = [
        Candidate("The cat sat on the hat.", -0.123456),
        Candidate("the cat sat on the hat", -0.2),  # the same after normalisation: left out
        Candidate("", -0.3),  # no word: left out
        Candidate("The cat sat on the mat.", -0.4),  # correct: kept, 0 errors
        Candidate("a cat sat", -0.5),
        Candidate("the dog", -0.6),  # past K = 3
    ]
    row, status = kbest_row(_miner(), SPEECH, "en", found, "speech", 3)
    assert status == "mined"
    assert json.dumps(row) == (
        '{"audio": {"path": "wavs/a.wav"}, "duration": 1.235, "reference": "the cat sat on the mat", '
        '"candidates": [{"text": "The cat sat on the hat.", "word_errors": 1, "logprob": -0.1235}, '
        '{"text": "The cat sat on the mat.", "word_errors": 0, "logprob": -0.4}, '
        '{"text": "a cat sat", "word_errors": 4, "logprob": -0.5}], '
        '"language": "en", "kind": "speech", "nbest_by": "m", "source": "x.jsonl:1"}'
    )
    for candidate in row["candidates"]:  # the evaluation's count, nothing of its own
        assert candidate["word_errors"] == score_utterance(SPEECH.text, candidate["text"], "en").errors


def test_fewer_distinct_hypotheses_than_k_make_a_shorter_row_and_no_mistake_makes_no_row():
    row, _ = kbest_row(_miner(), SPEECH, "en", [Candidate("the cat sat on a mat", -1.0)] * 4, "padded", 4)
    assert [c["text"] for c in row["candidates"]] == ["the cat sat on a mat"] and row["kind"] == "padded"
    right = [Candidate("the cat sat on the mat", -0.1), Candidate("The cat sat on the mat!", -0.2)]
    assert kbest_row(_miner(), SPEECH, "en", right, "speech", 4) == (None, "skipped_correct")
    assert kbest_row(_miner(), SPEECH, "en", [Candidate(" ", -0.1)], "speech", 4) == (None, "skipped_empty")


def test_no_speech_rows_hold_the_outputs_with_words_and_a_silent_model_gives_none():
    found = [Candidate("", -0.1), Candidate(" .", -0.2), Candidate(" you", -0.3), Candidate("you you", -0.4)]
    row, status = kbest_row(_miner(), SILENCE, "en", found, "no_speech", 4)
    assert status == "mined" and row["reference"] == "" and row["audio"]["path"] == "/elsewhere/b.wav"
    assert [(c["text"], c["word_errors"]) for c in row["candidates"]] == [("you", 1), ("you you", 2)]
    assert kbest_row(_miner(), SILENCE, "en", found[:2], "no_speech", 4) == (None, "skipped_correct")


def test_nbest_options_are_checked_and_decode_at_least_k():
    assert MiningOptions(nbest=6).decoding()["num_return_sequences"] == 6
    assert MiningOptions(nbest=2, num_candidates=5).decoding()["num_beams"] == 5
    with pytest.raises(UserInputError, match=r"^--nbest must be a whole number >= 0 \(0: preference pairs\), not -1$"):
        MiningOptions(nbest=-1)
    with pytest.raises(UserInputError, match="^--loop_pairs writes preference pairs: not with --nbest"):
        MiningOptions(nbest=4, loop_pairs=True)
    with pytest.raises(UserInputError, match="^--corrupt_correct writes preference pairs: not with --nbest"):
        MiningOptions(nbest=4, corrupt_correct=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return mining_setup(tmp_path_factory.mktemp("nbest"))


def _mine(setup, output: Path, **options) -> dict:
    root, _, model, processor = setup
    return mine_pairs(model, processor, root / "asr.jsonl", output, nbest=3, num_candidates=4, batch_size=2, **options)


def test_mined_kbest_rows_are_read_back_as_training_rows_and_counted(setup):
    root = setup[0]
    output = root / "kbest.jsonl"
    summary = _mine(setup, output, resume=False, generate_nonspeech=2)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert summary["written"] == len(rows) == summary["speech"] + summary["no_speech"] >= len(TEXTS)
    assert summary["hypotheses"] == sum(len(row["candidates"]) for row in rows)
    for row in rows:
        assert set(row) == {"audio", "duration", "reference", "candidates", "language", "kind", "nbest_by", "source"}
        assert 1 <= len(row["candidates"]) <= 3 and any(c["word_errors"] for c in row["candidates"])
        texts = [score_utterance(row["reference"], c["text"], "en").hypothesis_norm for c in row["candidates"]]
        assert len(set(texts)) == len(texts) and all(texts)
    report = read_preference_manifest(output, kbest_rows=True)
    assert len(report.examples) == len(rows) and all(isinstance(e, KBestExample) for e in report.examples)
    assert [e.reference for e in report.examples[: len(TEXTS)]] == TEXTS
    assert [h.word_errors for h in report.examples[0].hypotheses] == [c["word_errors"] for c in rows[0]["candidates"]]


def test_a_resumed_run_writes_the_file_an_uninterrupted_run_writes(setup, tmp_path):
    fresh = tmp_path / "fresh.jsonl"
    _mine(setup, fresh)
    expected = fresh.read_text()
    assert len(expected.splitlines()) == len(TEXTS)

    resumed = tmp_path / "resumed.jsonl"
    lines = expected.splitlines(keepends=True)
    resumed.write_text("".join(lines[:2]) + lines[2][:25])  # killed while writing the third row
    progress_path(resumed).write_text("".join(progress_path(fresh).read_text().splitlines(keepends=True)[:2]))
    summary = _mine(setup, resumed)
    assert summary["already_done"] == 2 and summary["written"] == 2
    assert resumed.read_text() == expected


def test_the_command_writes_kbest_rows_and_says_so(setup, tmp_path, capsys):
    root, model_dir, _, _ = setup
    output = tmp_path / "cli.jsonl"
    argv = ["make-pairs", "--model", str(model_dir), "--data", str(root / "asr.jsonl"), "--output", str(output)]
    assert cli.main([*argv, "--nbest", "2", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == len(TEXTS) and all(1 <= len(row["candidates"]) <= 2 for row in rows)
    err = capsys.readouterr().err
    assert f"{len(TEXTS)} K-best rows written to {output} (" in err
    assert f"{sum(len(row['candidates']) for row in rows)} hypotheses; " in err
    assert cli.main([*argv, "--nbest", "2", "--loop_pairs"]) == 2
    assert "--loop_pairs writes preference pairs: not with --nbest" in capsys.readouterr().err
