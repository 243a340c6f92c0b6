"""train / evaluate / make-pairs with a Hugging Face dataset as data (data/sources.py), end to end."""

from __future__ import annotations

import csv
import json
import time

import datasets
import pytest
from datasets import Audio, Dataset

from rlhf_asr.commands import cli
from train_fixtures import PAIRS, preference_dataset, train
from whisper_fixtures import write_tone


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def test_train_from_a_save_to_disk_folder_with_mapped_columns(workspace, tmp_path):
    preference_dataset(tmp_path, chosen="good", rejected="bad").save_to_disk(tmp_path / "prefs")
    summary = train(
        workspace,
        tmp_path / "out",
        "--train_data",
        str(tmp_path / "prefs"),
        "--chosen_column",
        "good",
        "--rejected_column",
        "bad",
        "--max_steps",
        "2",
    )
    assert summary["global_step"] == 2 and summary["train_rows"] == len(PAIRS)
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_train_streaming_parquet_runs_past_one_pass_with_max_steps(workspace, tmp_path):
    """6 rows, 2 per step, 5 steps: the stream is read again for a second pass (an IterableDataset)."""
    preference_dataset(tmp_path).to_parquet(str(tmp_path / "prefs.parquet"))
    summary = train(
        workspace, tmp_path / "out", "--train_data", str(tmp_path / "prefs.parquet"), "--streaming", "--max_steps", "5"
    )
    assert summary["global_step"] == 5 and summary["train_rows"] == len(PAIRS)


def test_streaming_checks_rows_when_reached_not_up_front(workspace, tmp_path):
    """A bad last row stops a full read before training; a 1-step stream never reaches it; reached, it is named."""
    pairs = [*PAIRS[:5], ("empty rejected", "")]
    preference_dataset(tmp_path, pairs).to_parquet(str(tmp_path / "bad.parquet"))
    data = ["--train_data", str(tmp_path / "bad.parquet"), "--per_device_train_batch_size", "1"]
    with pytest.raises(Exception, match=r"dataset bad.parquet, row 5: field 'rejected' is empty"):
        train(workspace, tmp_path / "full", *data, "--max_steps", "1")
    # unshuffled: a row is checked when reached (a shuffle buffer reaches up to its size ahead)
    unshuffled = ["--streaming", "--stream_shuffle_buffer", "0"]
    summary = train(workspace, tmp_path / "stream", *data, *unshuffled, "--max_steps", "1")
    assert summary["global_step"] == 1 and summary["train_rows"] < len(pairs)
    with pytest.raises(Exception, match=r"dataset bad.parquet, row 5: field 'rejected' is empty"):
        train(workspace, tmp_path / "reached", *data, "--streaming", "--max_steps", "8")
    summary = train(workspace, tmp_path / "skip", *data, "--streaming", "--max_steps", "8", "--skip_invalid_rows")
    assert summary["global_step"] == 8 and summary["train_rows"] == 5 and summary["train_rows_skipped"] == 1


def test_train_names_a_bad_dataset_row_by_index(workspace, tmp_path):
    pairs = [*PAIRS[:3], ("same words", "same  words")]
    preference_dataset(tmp_path, pairs).save_to_disk(tmp_path / "bad")
    with pytest.raises(Exception, match=r"dataset bad, row 3: chosen equals rejected"):
        train(workspace, tmp_path / "out", "--train_data", str(tmp_path / "bad"), "--max_steps", "1")


def test_evaluate_from_parquet_equals_evaluate_from_the_manifest(workspace, tmp_path, capsys):
    """The same clips and references, once as JSONL and once as parquet: the same WER, rows named by index."""
    preference_dataset(tmp_path).to_parquet(str(tmp_path / "test.parquet"))
    rows = [
        {"audio": {"path": f"wav/{i}.wav"}, "duration": 1.0 + 0.1 * i, "chosen": c, "rejected": r, "language": "en"}
        for i, (c, r) in enumerate(PAIRS)
    ]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    metrics = {}
    for name in ("test.parquet", "test.jsonl"):
        output = tmp_path / name.replace(".", "_") / "metrics.json"
        argv = ["evaluate", "--model", str(workspace["model"]), "--data", str(tmp_path / name)]
        assert cli.main([*argv, "--output", str(output), "--device", "cpu", "--batch_size", "3"]) == 0
        metrics[name] = json.loads(output.read_text())
        sources = [row["source"] for row in csv.DictReader(open(output.parent / "utterances.csv", encoding="utf-8"))]
    assert sources == [f"test.jsonl:{i + 1}" for i in range(len(PAIRS))]
    parquet, manifest = metrics["test.parquet"], metrics["test.jsonl"]
    assert parquet["num_utterances"] == manifest["num_utterances"] == len(PAIRS)
    for key in ("wer", "cer", "preference_accuracy", "audio_seconds"):
        assert parquet[key] == pytest.approx(manifest[key]), key
    first = csv.DictReader(open(tmp_path / "test_parquet" / "utterances.csv", encoding="utf-8"))
    assert next(first)["source"] == "dataset test.parquet, row 0"


def test_evaluate_asr_audiofolder_with_text_column_and_max_rows(workspace, tmp_path):
    folder = tmp_path / "af"
    for i in range(3):
        write_tone(folder / f"{i}.wav", 1.0, 300 + 50 * i, seed=i)
    (folder / "metadata.jsonl").write_text(
        "".join(json.dumps({"file_name": f"{i}.wav", "words": c}) + "\n" for i, (c, _) in enumerate(PAIRS[:3]))
    )
    output = tmp_path / "m" / "metrics.json"
    argv = ["evaluate", "--model", str(workspace["model"]), "--data", str(folder), "--output", str(output)]
    assert cli.main([*argv, "--device", "cpu", "--text_column", "words", "--max_rows", "2"]) == 0
    metrics = json.loads(output.read_text())
    assert metrics["num_utterances"] == 2 and metrics["manifest_type"] == "asr"


def test_make_pairs_from_a_dataset(workspace, tmp_path):
    asr = Dataset.from_dict(
        {
            "audio": [str(write_tone(tmp_path / f"{i}.wav", 1.0, 300 + 50 * i, seed=i)) for i in range(3)],
            "sentence": [c for c, _ in PAIRS[:3]],
        }
    ).cast_column("audio", Audio())
    asr.save_to_disk(tmp_path / "asr")
    output = tmp_path / "pairs.jsonl"
    argv = ["make-pairs", "--model", str(workspace["model"]), "--data", str(tmp_path / "asr"), "--output", str(output)]
    assert cli.main([*argv, "--device", "cpu", "--num_candidates", "2"]) == 0
    progress = [json.loads(line) for line in (tmp_path / "pairs.jsonl.progress").read_text().splitlines()]
    assert [row["source"] for row in progress] == [f"dataset asr, row {i}" for i in range(3)]


def test_missing_column_and_offline_hub_id_fail_in_one_line_before_the_model_loads(tmp_path, capsys, monkeypatch):
    preference_dataset(tmp_path).save_to_disk(tmp_path / "prefs")
    base = ["evaluate", "--model", str(tmp_path / "no-model-needed"), "--output", str(tmp_path / "m.json")]
    monkeypatch.setattr("rlhf_asr.trainer.validate.check_model_folder", lambda *args: None)
    assert cli.main([*base, "--data", str(tmp_path / "prefs"), "--chosen_column", "better"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "dataset prefs has neither columns 'better' and 'rejected' (--chosen_column, --rejected_column)" in error
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    assert cli.main([*base, "--data", "someone/unknown-set", "--data_config", "en", "--data_split", "test"]) == 2
    assert time.perf_counter() - started < 10
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no hub dataset 'someone/unknown-set' (config 'en') is in the local Hugging Face cache" in error


def _no_model_needed(tmp_path, monkeypatch) -> list[str]:
    monkeypatch.setattr("rlhf_asr.trainer.validate.check_model_folder", lambda *args: None)
    return ["evaluate", "--model", str(tmp_path / "no-model-needed"), "--output", str(tmp_path / "m.json")]


def test_evaluate_on_files_that_are_no_dataset_is_one_line_before_the_model_loads(tmp_path, capsys, monkeypatch):
    base = _no_model_needed(tmp_path, monkeypatch)
    (tmp_path / "dir").mkdir()
    (tmp_path / "notes.arrow").write_text("hello\n")
    (tmp_path / "notes.parquet").write_text("some words, not a table\n" * 10)
    cases = {
        str(tmp_path / "dir" / "*.parquet"): "the pattern matches no file",
        str(tmp_path / "notes.arrow"): "not an Arrow file (File is too small: 6)",
        str(tmp_path / "notes.parquet"): "not a parquet file (Parquet magic bytes not found",
    }
    for data, reason in cases.items():
        assert cli.main([*base, "--data", data]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert f"rlhf-asr evaluate: error: {'parquet files ' if '*' in data else ''}{data}: {reason}" in err, err


def test_evaluate_without_its_test_split_lists_the_splits_and_names_data_split(tmp_path, capsys, monkeypatch):
    base = _no_model_needed(tmp_path, monkeypatch)
    train = preference_dataset(tmp_path)
    datasets.DatasetDict({"train": train, "validation": train}).save_to_disk(tmp_path / "dd")
    capsys.readouterr()  # the progress bars of save_to_disk
    assert cli.main([*base, "--data", str(tmp_path / "dd")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "rlhf-asr evaluate: error: dataset dd: no split 'test' (it has train, validation); choose one with --data_split"
    )


def test_evaluate_says_which_split_it_took_and_what_it_skipped(workspace, tmp_path, capsys):
    """A one-split DatasetDict without 'test': its only split, said; a cut clip skipped, said on stderr."""
    data = preference_dataset(tmp_path).to_dict()
    whole = data["audio"][1]["bytes"]
    data["audio"][1] = {"bytes": whole[: whole.index(b"data") + 8 + 16], "path": "cut.wav"}  # 8 samples left
    only = Dataset.from_dict(data).cast_column("audio", Audio())
    datasets.DatasetDict({"train": only}).save_to_disk(tmp_path / "dd")
    capsys.readouterr()  # the progress bars of save_to_disk
    output = tmp_path / "m" / "metrics.json"
    argv = ["evaluate", "--model", str(workspace["model"]), "--data", str(tmp_path / "dd"), "--output", str(output)]
    assert cli.main([*argv, "--device", "cpu", "--skip_invalid_rows", "True"]) == 0
    err = capsys.readouterr().err
    assert "dataset dd has no split 'test': using its only split, 'train' (--data_split names one)" in err, err
    assert f"dd: {len(PAIRS)} rows read, 1 skipped (1 truncated audio)" in err, err
    assert "dataset dd (train), row 1: truncated audio: the bytes in column 'audio' (cut.wav): cut short" in err, err
    assert json.loads(output.read_text())["num_skipped"] == 1
