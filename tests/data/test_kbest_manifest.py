"""K-best rows read (data/manifest.py, `kbest_rows=True`): a good row's example; every bad row named
(file, line, reason) in one line, or skipped and counted; one kind of row per file; evaluation
scores a K-best file against its references."""

from __future__ import annotations

import json

import pytest

from manifest_fixtures import good_row, make_audio_folder, write_manifest
from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.data.examples import Hypothesis, KBestExample
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.evaluate import manifest_kind


@pytest.fixture
def folder(tmp_path):
    return make_audio_folder(tmp_path)


def kbest(**changes) -> dict:
    row = {
        "audio": {"path": "a.wav"},
        "duration": 2.0,
        "reference": "hello world",
        "candidates": [{"text": "hello word", "word_errors": 1, "logprob": -0.5}, {"text": "yellow", "word_errors": 2}],
    }
    row.update(changes)
    return row


def candidates(*items) -> dict:
    return kbest(candidates=list(items))


def without(key: str) -> dict:
    row = kbest()
    del row[key]
    return row


# (row on line 2, kind counted, reason, options)
BAD_ROWS = [
    (without("candidates"), "missing field", "missing field 'candidates'", {}),
    (without("reference") | {"candidates": []}, "missing field", "missing field 'reference'", {}),
    (kbest(candidates="hello word"), "wrong type", "field 'candidates' should be a list of", {}),
    (kbest(candidates=[]), "bad candidates", "field 'candidates' is an empty list", {}),
    (candidates("hello word"), "bad candidates", "candidates[0] should be an object like", {}),
    (candidates({"word_errors": 1}), "missing field", "missing field 'candidates[0].text'", {}),
    (candidates({"text": "hi"}), "missing field", "missing field 'candidates[0].word_errors'", {}),
    (candidates({"text": "hi", "word_errors": -1}), "bad word errors",
     "field 'candidates[0].word_errors' should be a whole number >= 0 (word edits against the reference), got -1", {}),
    (candidates({"text": "hi", "word_errors": 1.5}), "bad word errors", "got 1.5", {}),
    (candidates({"text": "hi", "word_errors": True}), "bad word errors", "got True", {}),
    (candidates({"text": "hi", "word_errors": "2"}), "bad word errors", "got '2'", {}),
    (candidates({"text": " ", "word_errors": 1}), "empty transcript",
     "field 'candidates[0].text' is empty: a hypothesis needs words", {}),
    (candidates({"text": "hi\u0007", "word_errors": 1}), "forbidden character",
     "field 'candidates[0].text' holds a control character U+0007", {}),
    (kbest(reference="hello\u001b world"), "forbidden character", "field 'reference' holds a control character", {}),
    (candidates({"text": "hi", "word_errors": 1, "logprob": float("nan")}), "wrong type",
     "field 'candidates[0].logprob' should be a finite number, got nan", {}),
    (candidates({"text": "a b", "word_errors": 2}, {"text": " a  b ", "word_errors": 2}), "duplicate candidate",
     "candidates[1] repeats candidates[0]", {}),
    (candidates({"text": "hello world", "word_errors": 1}), "bad word errors",
     "candidates[0] is the reference itself but has word_errors 1", {}),
    (kbest(chosen="hello world"), "pair and K-best", "row holds both a pair (chosen, rejected) and a K-best list", {}),
    (kbest(), "K-best with timestamps", "a K-best row has no segments: train it without --timestamps",
     {"timestamps": True}),
    (good_row(), "other kind of row", "a preference pair (chosen, rejected) where train.jsonl:1 is a K-best row "
     "(reference, candidates): one file holds one kind of row; write them to separate files", {}),
    (kbest(audio={"path": "gone.wav"}), "audio file missing", "audio file missing", {}),
]  # fmt: skip
IDS = [f"{index}-{case[1]}" for index, case in enumerate(BAD_ROWS)]


@pytest.mark.parametrize("row, kind, reason, options", BAD_ROWS, ids=IDS)
def test_a_bad_kbest_row_is_one_line_naming_file_line_and_reason(folder, row, kind, reason, options):
    manifest = write_manifest(folder, [kbest(), row, kbest(reference="hello there")])
    with pytest.raises(UserInputError) as caught:
        read_preference_manifest(manifest, kbest_rows=True, **options)
    message = str(caught.value)
    line = next(line for line in message.splitlines() if line.strip().startswith(f"{manifest}:2: "))
    assert reason in line, message
    every = options.get("timestamps")  # every row is refused, each in its line
    assert f"{3 if every else 1} invalid row(s) of 3" in message and "--skip_invalid_rows" in message


SKIPPABLE = [(case, name) for case, name in zip(BAD_ROWS, IDS) if not case[3]]  # without options


@pytest.mark.parametrize("row, kind, reason, options", [case for case, _ in SKIPPABLE], ids=[n for _, n in SKIPPABLE])
def test_a_bad_kbest_row_is_skipped_and_counted(folder, row, kind, reason, options):
    manifest = write_manifest(folder, [kbest(), row, kbest(reference="hello there")])
    report = read_preference_manifest(manifest, kbest_rows=True, skip_invalid=True)
    assert [example.where for example in report.examples] == ["train.jsonl:1", "train.jsonl:3"]
    assert [(problem.line, problem.kind) for problem in report.skipped] == [(2, kind)]
    assert report.summary() == f"train.jsonl: 3 rows read, 1 skipped (1 {kind})"


def test_a_good_kbest_row_is_read(folder):
    no_speech = kbest(reference="", candidates=[{"text": "you", "word_errors": 1}], language="English")
    report = read_preference_manifest(write_manifest(folder, [kbest(), no_speech]), kbest_rows=True)
    hypotheses = (Hypothesis("hello word", 1, -0.5), Hypothesis("yellow", 2, None))
    assert report.examples == [
        KBestExample(folder / "a.wav", 2.0, "hello world", hypotheses, None, "train.jsonl:1"),
        KBestExample(folder / "a.wav", 2.0, "", (Hypothesis("you", 1, None),), "en", "train.jsonl:2"),
    ]  # fmt: skip
    assert report.summary() == "train.jsonl: 2 rows read (1 no-speech), 0 skipped"
    assert [example.no_speech for example in report.examples] == [False, True]


def test_a_file_of_pairs_refuses_a_kbest_row_and_readers_of_pairs_take_none(folder):
    mixed = write_manifest(folder, [good_row(), kbest()])
    with pytest.raises(UserInputError, match=r"train.jsonl:2: a K-best row \(reference, candidates\) where "
                       r"train.jsonl:1 is a preference pair \(chosen, rejected\)"):  # fmt: skip
        read_preference_manifest(mixed, kbest_rows=True)
    with pytest.raises(UserInputError, match="k.jsonl:1: missing field 'chosen'"):
        read_preference_manifest(write_manifest(folder, [kbest()], "k.jsonl"))  # review, the demo: pairs only
    report = read_preference_manifest(mixed, kbest_rows=True, skip_invalid=True)
    assert report.summary() == "train.jsonl: 2 rows read, 1 skipped (1 other kind of row)"


def test_a_duplicate_kbest_row_is_refused(folder):
    with pytest.raises(UserInputError, match="train.jsonl:2: duplicate of line 1"):
        read_preference_manifest(write_manifest(folder, [kbest(), kbest()]), kbest_rows=True)


def test_train_stops_on_a_bad_kbest_row_with_one_line(folder, tmp_path, capsys):
    manifest = write_manifest(folder, [kbest(), candidates({"text": "hi", "word_errors": -3})])
    argv = ["train", "--model", "tiny.en", "--data", str(manifest), "--output_dir", str(tmp_path / "out"),
            "--loss", "mwer"]  # fmt: skip
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{manifest}:2: field 'candidates[0].word_errors' should be" in err


def test_evaluation_reads_a_kbest_file_as_references(folder):
    assert manifest_kind(write_manifest(folder, [kbest()])) == "kbest"
    assert manifest_kind(write_manifest(folder, [good_row()], "p.jsonl")) == "preference"
    assert manifest_kind(write_manifest(folder, [json.loads('{"sentence": "x"}')], "a.jsonl")) == "asr"
