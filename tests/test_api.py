"""The Python API (`rlhf_asr/api.py`): the CLI as a thin layer over it, loaded models, errors, types.

The README's script itself runs in tests/test_readme.py.
"""

from __future__ import annotations

import inspect
import json

import pytest

import rlhf_asr
from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.errors import UserInputError
from train_fixtures import PAIRS, write_manifest
from whisper_fixtures import make_tiny_whisper_dir


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    pairs = write_manifest(root, "pairs", PAIRS[:4])
    asr = root / "asr.jsonl"
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    asr.write_text("".join(json.dumps({**r, "sentence": r["chosen"]}) + "\n" for r in rows))
    return {"root": root, "model": make_tiny_whisper_dir(root), "pairs": pairs, "asr": asr}


def test_cli_and_api_write_the_same_metrics(files, tmp_path):
    """The command is a layer over the function: same options, same numbers."""
    api = rlhf_asr.evaluate(files["model"], files["pairs"], output=tmp_path / "api.json", device="cpu")
    code = cli_main(["evaluate", "--model", str(files["model"]), "--data", str(files["pairs"]), "--output",
                     str(tmp_path / "cli" / "cli.json"), "--device", "cpu"])  # fmt: skip
    cli = json.loads((tmp_path / "cli" / "cli.json").read_text())
    assert code == 0
    timing = {"rtf", "decode_seconds", "audio_seconds"}
    assert {k: v for k, v in cli.items() if k not in timing} == {k: v for k, v in api.items() if k not in timing}


def test_a_loaded_model_is_reused_and_arrays_are_transcribed(files):
    from rlhf_asr.data.audio import load_audio

    loaded = rlhf_asr.load_model(files["model"], device="cpu")
    audio = load_audio(files["root"] / "audio" / "pairs0.wav")
    assert rlhf_asr.load_model(loaded) is loaded
    assert rlhf_asr.transcribe(loaded, audio) == rlhf_asr.transcribe(loaded, [files["root"] / "audio" / "pairs0.wav"])


def test_bad_input_is_one_user_error(files, tmp_path):
    with pytest.raises(UserInputError, match="unknown option.*lora_rank"):
        rlhf_asr.train(files["pairs"], model=files["model"], output_dir=tmp_path / "x", lora_rank=4)
    with pytest.raises(UserInputError, match="missing.wav: no such file"):
        rlhf_asr.transcribe(files["model"], tmp_path / "missing.wav")
    with pytest.raises(UserInputError, match="is a folder"):
        rlhf_asr.evaluate(files["model"], files["pairs"], output=tmp_path)


def test_every_api_function_is_typed_and_documented():
    for name in ("train", "evaluate", "transcribe", "make_pairs", "load_model"):
        function = getattr(rlhf_asr, name)
        signature = inspect.signature(function)
        assert function.__doc__ and "Args:" in function.__doc__, name
        assert signature.return_annotation is not inspect.Signature.empty, name
        untyped = [p.name for p in signature.parameters.values() if p.annotation is inspect.Parameter.empty]
        assert untyped in ([], ["options"]), (name, untyped)
