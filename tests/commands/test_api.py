"""The Python API (`rlhf_asr/api.py`): the CLI as a thin layer over it, loaded models, errors, types.

The README's script itself runs in tests/test_readme.py.
"""

from __future__ import annotations

import inspect
import json
import math
from functools import partial

import numpy as np
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


def test_the_api_and_every_command_start_from_the_same_default_model(tmp_path):
    """`api.train()` and `rlhf-asr train` once trained different models (tiny.en against a hub id)."""
    from rlhf_asr.commands.train import parse_args
    from rlhf_asr.studies.options import DemoOptions

    api_default = inspect.signature(rlhf_asr.train).parameters["model"].default
    cli_default = parse_args(["--output_dir", str(tmp_path)])[0].base_model
    assert api_default == cli_default
    from rlhf_asr.model.bundled import DEFAULT_MODEL

    assert api_default is DEFAULT_MODEL and DemoOptions.model == DEFAULT_MODEL == "tiny.en"  # bundled: offline


def _wrong_calls(files, tmp_path):
    """(call, the one line it must raise): each a value the CLI's parser could never hand over."""
    model, wav, api = files["model"], files["root"] / "audio" / "pairs0.wav", rlhf_asr
    out = tmp_path / "x"
    return [
        (lambda: api.transcribe(model, [5]), "audio item 0: 5 (int) is neither a file path nor an array"),
        (lambda: api.transcribe(model, [wav], batch_size=0), "--batch_size 0: must be at least 1"),
        (lambda: api.transcribe(model, [wav], batch_size="2"), "--batch_size '2': must be a whole number, not str"),
        (lambda: api.transcribe(model, [wav], num_beams=1.5), "--num_beams 1.5: must be a whole number or None"),
        (lambda: api.transcribe(model, np.zeros((2, 3))), "audio item 0: an array of shape (2, 3); give mono"),
        (lambda: api.transcribe(model, [wav, np.zeros(9, np.int16)]), "audio item 1: an array of int16; give mono"),
        (lambda: api.transcribe(model, wav, long_form={}), "--long_form {}: must be a LongFormOptions or None"),
        (lambda: api.evaluate(model, files["pairs"], max_rows="1"), "--max_rows '1': must be a whole number or None"),
        (lambda: api.evaluate(model, files["pairs"], backend="x"), "--backend 'x': must be one of hf, ct2"),
        (lambda: api.make_pairs(model, files["asr"], 123), "--output 123: must be text or a path, not int"),
        (lambda: api.make_pairs(model, files["asr"], out, batch_size=0), "--batch_size 0: must be at least 1"),
        (lambda: api.train(files["pairs"], output_dir=out, max_steps="1"), "--max_steps '1': must be a whole number"),
        (lambda: api.train(files["pairs"], output_dir=out, model=5), "--model 5: must be text, not int"),
    ]


def test_wrong_types_and_values_are_one_user_error_before_any_loading(files, tmp_path, monkeypatch):
    import rlhf_asr.api

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded a model before checking the options")

    monkeypatch.setattr(rlhf_asr.api, "load_model", no_loading)
    for call, message in _wrong_calls(files, tmp_path):
        with pytest.raises(UserInputError) as caught:
            call()
        assert str(caught.value).startswith(message), (str(caught.value), message)


def test_the_api_says_what_the_cli_says(files, capsys):
    wav = str(files["root"] / "audio" / "pairs0.wav")
    with pytest.raises(UserInputError) as caught:
        rlhf_asr.transcribe(files["model"], wav, batch_size=0)
    assert cli_main(["transcribe", "--model", str(files["model"]), "--batch_size", "0", wav]) == 2
    assert capsys.readouterr().err.strip() == f"rlhf-asr transcribe: error: {caught.value}"


class _Loading(Exception):
    """Raised in place of loading a model: the call got past every check."""


def _outcome(call) -> str:
    try:
        call()
    except UserInputError as error:
        return str(error)
    except _Loading:
        return "accepted"
    return "accepted"


def _edges(kind) -> tuple:
    return (0, -1, 1, 2) if kind in (int, int | None) else (0.0, -0.5, 0.5, math.nan, math.inf)


@pytest.mark.parametrize("command", ["transcribe", "evaluate", "make_pairs"])
def test_the_api_refuses_exactly_the_numbers_its_command_refuses(files, tmp_path, monkeypatch, command):
    """Every number the command's options dataclass has and the function takes, at the edges of its
    range: the function refuses what the command refuses, in the same line, and accepts the rest."""
    import typing

    import rlhf_asr.api
    from rlhf_asr.commands.evaluate import EvaluateOptions
    from rlhf_asr.commands.make_pairs import MakePairsOptions
    from rlhf_asr.commands.transcribe import TranscribeOptions

    def loading(*args, **kwargs):
        raise _Loading

    monkeypatch.setattr(rlhf_asr.api, "load_model", loading)
    monkeypatch.setattr("rlhf_asr.pairs.mine_pairs", loading)
    wav, model, pairs = files["root"] / "audio" / "pairs0.wav", str(files["model"]), tmp_path / "p.jsonl"
    cls, required, function, args = {
        "transcribe": (TranscribeOptions, {}, rlhf_asr.transcribe, (model, wav)),
        "evaluate": (EvaluateOptions, {"data": "d", "output": "o"}, rlhf_asr.evaluate, (model, files["pairs"])),
        "make_pairs": (MakePairsOptions, {"data": "d", "output": str(pairs)}, rlhf_asr.make_pairs,
                       (model, files["asr"], pairs)),
    }[command]  # fmt: skip
    taken = inspect.signature(function).parameters
    kinds = {name: kind for name, kind in typing.get_type_hints(cls).items() if name in taken}
    numbers = {name: kind for name, kind in kinds.items() if kind in (int, int | None, float)}
    assert len(numbers) >= 3, kinds
    for name, kind in numbers.items():
        for value in _edges(kind):
            cli = _outcome(partial(cls, model=model, **required, **{name: value}))
            assert _outcome(partial(function, *args, **{name: value})) == cli, (name, value)


def test_train_names_its_options_as_the_command_does():
    from rlhf_asr.api import TRAIN_OPTION_NAMES
    from rlhf_asr.commands.train import NAMES

    assert TRAIN_OPTION_NAMES == {field: f"--{option}" for option, field in NAMES.items()}
