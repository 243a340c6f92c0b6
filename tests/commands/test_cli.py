"""The CLI as a user runs it: synthesized clips -> train -> merge -> pipeline; bad input -> one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_asr.data.audio import load_audio
from rlhf_asr.data.synth_audio import espeak_available, synthesize
from train_fixtures import train_argv
from whisper_fixtures import make_tiny_whisper_dir, write_tone

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [
    ("the sun is shining today", "the son is shining today"),
    ("please close the door", "please clothes the door"),
    ("we will meet at noon", "we will meat at noon"),
    ("the night is dark and cold", "the knight is dark and cold"),
]


def rlhf_asr(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "rlhf_asr.commands.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("speech")
    rows = []
    for i, (chosen, rejected) in enumerate(PAIRS):
        seconds = synthesize(chosen, folder / f"clip{i}.wav", voice="en-us", speed=170)
        rows.append({"audio": {"path": f"clip{i}.wav"}, "duration": seconds, "chosen": chosen, "rejected": rejected})
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.mark.slow
def test_train_merge_and_pipeline_from_the_command_line(speech, tmp_path):
    model = make_tiny_whisper_dir(tmp_path)
    out = tmp_path / "run"
    workspace = {"model": model, "train": speech / "train.jsonl"}
    extra = ["--test_data", str(speech / "train.jsonl"), "--num_train_epochs", "1"]
    trained = rlhf_asr("train", *train_argv(workspace, out, *extra), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (out / "adapter_model.safetensors").is_file()  # LoRA, the default

    merged = rlhf_asr("merge", str(out), str(tmp_path / "merged"), cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr[-3000:]

    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(tmp_path / "merged"), device="cpu")
    audio = load_audio(speech / "clip0.wav")
    result = asr({"raw": audio, "sampling_rate": 16000})
    assert isinstance(result["text"], str)

    said = rlhf_asr("transcribe", "--model", str(out), str(speech / "clip1.wav"), cwd=tmp_path)
    assert said.returncode == 0, said.stderr[-3000:]
    assert said.stdout.startswith(str(speech / "clip1.wav") + "\t")


def _bad_manifest_cases(folder: Path) -> dict[str, tuple[str, str]]:
    write_tone(folder / "ok.wav", 1.0)
    (folder / "empty.wav").write_bytes(b"")
    good = {"audio": {"path": "ok.wav"}, "duration": 1.0, "chosen": "a b", "rejected": "a c"}
    return {
        "invalid JSON": ("{not json", "invalid JSON"),
        "missing field": (json.dumps({k: v for k, v in good.items() if k != "rejected"}), "rejected"),
        "audio missing": (json.dumps({**good, "audio": {"path": "nowhere.wav"}}), "nowhere.wav"),
        "unreadable audio": (json.dumps({**good, "audio": {"path": "empty.wav"}}), "empty.wav"),
        "empty transcript": (json.dumps({**good, "chosen": "  "}), "chosen"),
        "chosen equals rejected": (json.dumps({**good, "rejected": "a  b"}), "rejected"),
        "duration far off": (json.dumps({**good, "duration": 9.0}), "duration"),
        "unknown language": (json.dumps({**good, "language": "Klingon"}), "Klingon"),
    }


# One case per stage of the check (parsing, the audio file, the texts), each in its own process: the
# path from a bad row to one printed line is the same for every kind, and tests/data/test_manifest.py
# checks the message of every kind in-process (a process costs ~20 s of CI time here).
BAD_CASES = [
    "invalid JSON",
    "audio missing",
    "chosen equals rejected",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_manifest_row_stops_with_one_line_naming_file_and_line(case, tmp_path):
    line, expected = _bad_manifest_cases(tmp_path)[case]
    good = json.dumps({"audio": {"path": "ok.wav"}, "duration": 1.0, "chosen": "a b", "rejected": "a c"})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(f"{good}\n{line}\n")
    model = make_tiny_whisper_dir(tmp_path, processor_name="base")
    result = rlhf_asr(
        "train",
        "--base_model",
        str(model),
        "--train_data",
        str(manifest),
        "--output_dir",
        str(tmp_path / "out"),
        "--language",
        "English",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "train.jsonl:2" in result.stderr and expected in result.stderr, result.stderr
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_missing_model_offline_is_one_line(tmp_path):
    result = rlhf_asr(
        "train",
        "--base_model",
        "someone/whisper-that-is-not-cached",
        "--train_data",
        "x.jsonl",
        "--output_dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "offline" in result.stderr


def test_unknown_command_and_help(tmp_path):
    listed = rlhf_asr("--help", cwd=tmp_path).stdout
    for command in ("train", "evaluate", "transcribe", "merge", "import-ct2", "make-pairs", "bench", "demo"):
        assert f"\n  {command} " in listed, command
    assert rlhf_asr("fly", cwd=tmp_path).returncode == 2
