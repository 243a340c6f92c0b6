"""Bad data through the whole tool: `rlhf-asr train` / `evaluate` stop with exit 2 and a line naming
file, row and reason, or skip and count with --skip_invalid_rows; NaN never reaches the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.data.dataset import PreferenceDataset
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.errors import UserInputError
from whisper_fixtures import make_tiny_whisper_dir, tiny_processor, write_tone

GOOD = [("the cat sat", "the hat sat"), ("hello world", "yellow world")]


def _float_wav(path: Path, value: float) -> None:
    samples = np.full(16000, 0.1, np.float32)
    samples[4000:4100] = value
    sf.write(path, samples, 16000, subtype="FLOAT")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_data")
    for i in range(2):
        write_tone(folder / f"ok{i}.wav", 1.0, 300 + 100 * i, seed=i)
    _float_wav(folder / "nan.wav", np.nan)
    _float_wav(folder / "huge.wav", 1e19)  # finite, but its power spectrum overflows float32
    write_tone(folder / "long.wav", 31.0)
    return {"root": folder, "model": make_tiny_whisper_dir(folder)}


def _manifest(folder: Path, bad_rows: list[str], name: str = "train.jsonl") -> Path:
    rows = [json.dumps({"audio": {"path": f"ok{i}.wav"}, "duration": 1.0, "chosen": c, "rejected": r})
            for i, (c, r) in enumerate(GOOD)]  # fmt: skip
    path = folder / name
    path.write_text("\n".join(rows[:1] + bad_rows + rows[1:]) + "\n")
    return path


def _row(audio: str, seconds: float = 1.0) -> str:
    return json.dumps({"audio": {"path": audio}, "duration": seconds, "chosen": "one two", "rejected": "one too"})


BAD = {
    "nan": (_row("nan.wav"), "non-finite audio", "train.jsonl:2: non-finite audio: {root}/nan.wav: has NaN or inf"),
    "over 30 s": (_row("long.wav", 31.0), "over Whisper's 30 s",
                  "train.jsonl:2: audio lasts 31.00 s, over Whisper's 30 s"),
    "deep JSON": ('{"audio": ' + "[" * 100_000 + "]" * 100_000 + "}", "invalid JSON",
                  "train.jsonl:2: invalid JSON: nested too deeply to read"),
    "folder": (_row("."), "audio path is a folder", "train.jsonl:2: audio path is a folder: {root}: is a folder"),
}  # fmt: skip


def _train(workspace, manifest: Path, output: Path, *extra: str) -> int:
    return cli_main([
        "train", "--base_model", str(workspace["model"]), "--train_data", str(manifest), "--output_dir", str(output),
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--warmup_steps", "0", "--report_to", "none",
        "--plot", "False", "--use_adalora", "False", "--dataloader_pin_memory", "False", *extra,
    ])  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_train_stops_with_one_line_per_bad_row(workspace, tmp_path, capsys, case):
    row, _, expected = BAD[case]
    manifest = _manifest(tmp_path, [row])
    for name in ("ok0.wav", "ok1.wav", "nan.wav", "long.wav"):
        (tmp_path / name).symlink_to(workspace["root"] / name)
    assert _train(workspace, manifest, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert expected.format(root=tmp_path) in err, err
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_train_skips_and_counts_bad_rows(workspace, tmp_path, rlhf_log):
    manifest = _manifest(workspace["root"], [BAD[case][0] for case in ("nan", "over 30 s", "deep JSON")], "skip.jsonl")
    assert _train(workspace, manifest, tmp_path / "out", "--skip_invalid_rows", "True") == 0
    assert (
        "skip.jsonl: 5 rows read, 3 skipped (1 non-finite audio, 1 over Whisper's 30 s, 1 invalid JSON)"
        in rlhf_log.text
    )
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert summary["train_rows"] == 2 and summary["train_rows_skipped"] == 3


def test_train_stops_before_non_finite_features_reach_the_model(workspace, tmp_path, capsys):
    """Finite samples whose spectrum overflows float32 pass the file check; the dataset stops them."""
    manifest = _manifest(workspace["root"], [_row("huge.wav")], "huge.jsonl")
    assert _train(workspace, manifest, tmp_path / "out", "--skip_invalid_rows", "True") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"huge.jsonl:2: {workspace['root'] / 'huge.wav'}: log-Mel features hold NaN or inf" in err, err
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("augmented", [False, True])
def test_dataset_never_returns_non_finite_features(workspace, augmented):
    processor = tiny_processor()
    name = "ok0.jsonl" if augmented else "huge.jsonl"
    manifest = _manifest(workspace["root"], [] if augmented else [_row("huge.wav")], name)
    examples = read_preference_manifest(manifest).examples
    poison = (lambda audio, rate: np.where(np.arange(len(audio)) == 10, np.nan, audio)) if augmented else None
    dataset = PreferenceDataset(examples, processor.feature_extractor, TranscriptEncoder(processor.tokenizer),
                                augmenter=poison)  # fmt: skip
    index = 0 if augmented else 1
    cause = "after augmentation" if augmented else "the samples overflow float32"
    with pytest.raises(UserInputError, match=f"{name}:{index + 1}: .* log-Mel features hold NaN or inf .{cause}"):
        dataset[index]
    if not augmented:
        assert torch.isfinite(torch.from_numpy(dataset[0]["input_features"])).all()


def test_dataset_names_the_row_when_a_file_goes_bad_after_the_check(workspace, tmp_path):
    write_tone(tmp_path / "ok0.wav", 1.0)
    manifest = _manifest(tmp_path, [], "later.jsonl")
    (tmp_path / "ok1.wav").symlink_to(workspace["root"] / "ok1.wav")
    processor = tiny_processor()
    dataset = PreferenceDataset(read_preference_manifest(manifest).examples, processor.feature_extractor,
                                TranscriptEncoder(processor.tokenizer))  # fmt: skip
    _float_wav(tmp_path / "ok0.wav", np.inf)
    with pytest.raises(UserInputError, match=r"^later.jsonl:1: audio file .*ok0.wav: has NaN or inf samples"):
        dataset[0]


def test_evaluate_deep_json_array_is_one_line(workspace, tmp_path, capsys):
    manifest = tmp_path / "test.json"
    manifest.write_text("[\n" + _row("ok0.wav") + ",\n" + "[" * 100_000 + "]" * 100_000 + "\n]")
    code = cli_main(["evaluate", "--model", str(workspace["model"]), "--data", str(manifest),
                     "--output", str(tmp_path / "m.json"), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{manifest}:3: invalid JSON array: nested too deeply to read" in err, err


def test_evaluate_says_on_stderr_how_many_rows_it_skipped_and_why(workspace, tmp_path, capsys):
    """Skipped rows were counted only in metrics.json: stderr now says how many, of which kinds, and which rows."""
    (tmp_path / "nan.wav").symlink_to(workspace["root"] / "nan.wav")
    for name in ("ok0.wav", "ok1.wav"):
        (tmp_path / name).symlink_to(workspace["root"] / name)
    manifest = _manifest(tmp_path, [_row("nan.wav"), _row("missing.wav")], "test.jsonl")
    output = tmp_path / "m.json"
    code = cli_main(["evaluate", "--model", str(workspace["model"]), "--data", str(manifest), "--output", str(output),
                     "--device", "cpu", "--skip_invalid_rows", "True"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    assert "test.jsonl: 4 rows read, 2 skipped (1 non-finite audio, 1 audio file missing)" in err, err
    assert f"{manifest}:2: non-finite audio: {tmp_path / 'nan.wav'}: has NaN or inf samples" in err, err
    assert f"{manifest}:3: audio file missing: {tmp_path / 'missing.wav'}: no such file" in err, err
    assert json.loads(output.read_text())["num_skipped"] == 2
