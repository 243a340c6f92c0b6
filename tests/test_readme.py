"""The README's "Your own data" commands and its Python API script, run as written on tiny data.

Only what a tiny test needs is changed: `tiny.en` becomes a tiny random Whisper folder, and the
counts that only cost time are shrunk (`--generate_nonspeech 40` -> 2). Every command must exit 0.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rlhf_asr.commands.cli import main as cli_main
from train_fixtures import PAIRS
from whisper_fixtures import make_tiny_whisper_dir, write_tone

README = Path(__file__).resolve().parents[1] / "README.md"
SHRINK = {"--generate_nonspeech 40": "--generate_nonspeech 2", "generate_nonspeech=40": "generate_nonspeech=2"}


def readme_block(marker: str) -> str:
    """The fenced block right after `<!-- marker -->`."""
    found = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert found, f"README has no block marked {marker}"
    return found.group(1)


def _localise(text: str, model: Path) -> str:
    for long, short in SHRINK.items():
        text = text.replace(long, short)
    return text.replace("tiny.en", str(model))


@pytest.fixture()
def own_data(tmp_path, monkeypatch):
    """train/test ASR manifests (a no-speech row in the test set), a 40 s meeting.wav, a tiny model."""
    model = make_tiny_whisper_dir(tmp_path / "m")
    for name, offset in (("train", 0), ("test", 3)):
        rows = []
        for i, (text, _) in enumerate(PAIRS[:3]):
            clip = write_tone(tmp_path / "audio" / f"{name}{i}.wav", 1.0 + 0.2 * i, 220 + 60 * (i + offset), seed=i)
            rows.append(
                {"audio": {"path": str(clip.relative_to(tmp_path))}, "duration": 1.0 + 0.2 * i, "sentence": text}
            )
        rows[-1]["sentence"] = "" if name == "test" else rows[-1]["sentence"]
        (tmp_path / f"{name}.asr.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "meeting.wav", (0.05 * rng.standard_normal(16000 * 40)).astype(np.float32), 16000)
    monkeypatch.chdir(tmp_path)
    return model


@pytest.mark.slow
def test_own_data_commands_run_as_written(own_data, tmp_path):
    lines = [line for line in readme_block("own-data").splitlines() if line.strip() and not line.startswith("#")]
    assert [shlex.split(line)[1] for line in lines] == [
        "make-pairs", "train", "evaluate", "evaluate", "merge", "transcribe", "export-ct2", "evaluate", "evaluate",
    ]  # fmt: skip
    for line in lines:
        argv = shlex.split(_localise(line, own_data))
        assert argv[0] == "rlhf-asr"
        assert cli_main(argv[1:]) == 0, line
    assert (tmp_path / "run" / "merged" / "model.safetensors").is_file()
    assert (tmp_path / "subtitles" / "meeting.srt").is_file()
    after = json.loads((tmp_path / "after" / "metrics.json").read_text())
    assert after["rows_no_speech"] == 1 and after["hallucination_rate"] is not None
    assert "wer_difference" in json.loads((tmp_path / "ct2" / "metrics.json").read_text())
    deployed = json.loads((tmp_path / "fw" / "metrics.json").read_text())
    assert deployed["backend"] == "faster-whisper" and deployed["nonspeech_output_rate"] is not None


@pytest.mark.slow
def test_python_api_script_runs_as_written(own_data, tmp_path, capsys):
    exec(compile(_localise(readme_block("python-api"), own_data), "README python-api", "exec"), {})
    printed = capsys.readouterr().out.splitlines()[-2:]  # the Trainer prints its final metrics first
    assert float(printed[0]) >= 0 and printed[1]
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()
