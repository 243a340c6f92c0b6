"""Bad options, files and numbers through `rlhf-asr`: one line on stderr, exit 2, no traceback.

Option checks must fail before any data or model is loaded, so for them stderr must hold the
error line and nothing else (no "Loading weights" progress, no warnings). Runs that fail during
training must end with one error line and leave nothing non-finite on disk.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import train_fixtures
from rlhf_asr.commands.cli import main as cli_main
from whisper_fixtures import make_tiny_whisper_dir, write_tone


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli_main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line(rc: int, err: str, *needles: str, only_line: bool = True) -> str:
    """Exit 2, no traceback, exactly one `rlhf-asr CMD: error:` line naming every needle."""
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("rlhf-asr ")]
    assert len(errors) == 1, err[-2000:]
    if only_line:  # failed before loading anything: nothing else was printed
        assert err.strip() == errors[0], err[-2000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("errors")
    rows = []
    for i in range(4):
        write_tone(folder / f"a{i}.wav", 1.0, 300 + 60 * i, seed=i)
        rows.append(
            {
                "audio": {"path": f"a{i}.wav"},
                "duration": 1.0,
                "chosen": "hello world",
                "rejected": "yellow world",
                "language": "English",
            }
        )
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"root": folder, "model": make_tiny_whisper_dir(folder), "train": folder / "train.jsonl"}


def train_argv(ws, output: Path, *extra: str) -> list[str]:
    """`rlhf-asr train` with the suite's small-run options (train_fixtures), one epoch of LoRA rank 4."""
    small = ["--plot", "False", "--use_adalora", "False", "--lora_r", "4", "--num_train_epochs", "1"]
    return ["train", *train_fixtures.train_argv(ws, output, *small, *extra)]


# ---- option values: rejected before loading ----

OPTION_CASES = {
    "lora_r 0": (["--lora_r", "0"], "--lora_r"),
    "lora_dropout 2": (["--lora_dropout", "2"], "--lora_dropout"),
    "unknown target module": (["--target_modules", "q_proj,foo"], "foo"),
    "batch size 0": (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size"),
    "gradient accumulation 0": (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps"),
    "logps chunk 0": (["--logps_chunk_size", "0"], "--logps_chunk_size"),
    "learning rate nan": (["--learning_rate", "nan"], "--learning_rate"),
    "negative alpha": (["--alpha", "-1"], "--alpha"),
    "max_train_rows 0": (["--max_train_rows", "0"], "--max_train_rows"),
    "zero epochs": (["--num_train_epochs", "0"], "--num_train_epochs"),
    "unknown flag": (["--lerning_rate", "1e-4"], "--lerning_rate"),
    "bad value type": (["--lora_r", "x"], "--lora_r"),
}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_bad_training_option_is_one_line_before_loading(case, ws, tmp_path, capsys):
    extra, needle = OPTION_CASES[case]
    rc, _, err = run(capsys, *train_argv(ws, tmp_path / "out", *extra))
    assert_one_line(rc, err, needle)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_output_dir_that_is_a_file(ws, tmp_path, capsys):
    (tmp_path / "out").write_text("not a folder")
    rc, _, err = run(capsys, *train_argv(ws, tmp_path / "out"))
    assert_one_line(rc, err, "--output_dir", "is a file")


def test_target_module_names_are_whisper_modules(tiny_model):
    """The known names are checked against transformers' Whisper, not against this project."""
    from rlhf_asr.trainer.validate import WHISPER_LINEAR_MODULES, WHISPER_OTHER_MODULES

    leaves = {name.rsplit(".", 1)[-1]: type(module) for name, module in tiny_model.named_modules() if name}
    linear = {name for name, kind in leaves.items() if kind is torch.nn.Linear}
    assert linear == set(WHISPER_LINEAR_MODULES)
    assert set(WHISPER_OTHER_MODULES) <= set(leaves)


# ---- --config files ----

CONFIG_CASES = {
    "misspelt key": ("run.yaml", b"lerning_rate: 0.001\n", "--lerning_rate"),
    "not UTF-8": ("run.yaml", "language: Fran\u00e7ais\n".encode("latin-1"), "UTF-8"),
    "not a mapping": ("run.json", b"[1, 2]", "mapping"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_config_file_is_one_line(case, ws, tmp_path, capsys):
    name, content, needle = CONFIG_CASES[case]
    (tmp_path / name).write_bytes(content)
    rc, _, err = run(capsys, *train_argv(ws, tmp_path / "out", "--config", str(tmp_path / name)))
    assert_one_line(rc, err, needle, name)


# ---- resuming ----


@pytest.fixture(scope="module")
def checkpoint(ws):
    """checkpoint-1 of a LoRA r=4 run (optimizer, scheduler, RNG state, trainer state)."""
    out = ws["root"] / "resume_source"
    assert cli_main(train_argv(ws, out, "--max_steps", "1", "--save_strategy", "steps", "--save_steps", "1")) == 0
    assert (out / "checkpoint-1" / "optimizer.pt").is_file() and (out / "checkpoint-1" / "rng_state.pth").is_file()
    return out / "checkpoint-1"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


RESUME_CASES = {
    "truncated adapter": (lambda c: _truncate(c / "adapter_model.safetensors"), [], "adapter_model.safetensors"),
    "truncated optimizer": (lambda c: _truncate(c / "optimizer.pt"), [], "optimizer.pt"),
    "truncated rng state": (lambda c: _truncate(c / "rng_state.pth"), [], "rng_state.pth"),
    "no trainer state": (lambda c: (c / "trainer_state.json").unlink(), [], "trainer_state.json"),
    "other lora rank": (lambda c: None, ["--lora_r", "8"], "--lora_r 8"),
    "full fine-tuning onto lora": (lambda c: None, ["--peft", "none"], "--peft none"),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_bad_resume_checkpoint_is_one_line_before_training(case, ws, checkpoint, tmp_path, capsys):
    damage, extra, needle = RESUME_CASES[case]
    copy = tmp_path / "run" / "checkpoint-1"
    shutil.copytree(checkpoint, copy)
    damage(copy)
    rc, _, err = run(capsys, *train_argv(ws, tmp_path / "run", "--resume_from_checkpoint", str(copy), *extra))
    assert_one_line(rc, err, needle, "--resume_from_checkpoint")


def test_resume_from_missing_folder_or_empty_output(ws, tmp_path, capsys):
    rc, _, err = run(capsys, *train_argv(ws, tmp_path / "out", "--resume_from_checkpoint", str(tmp_path / "nope")))
    assert_one_line(rc, err, "nope", "no such folder")
    rc, _, err = run(capsys, *train_argv(ws, tmp_path / "out", "--resume_from_checkpoint", "True"))
    assert_one_line(rc, err, "no checkpoint", str(tmp_path / "out"))


def test_resume_true_picks_the_last_checkpoint(ws, checkpoint, tmp_path):
    from rlhf_asr.commands.train import parse_args
    from rlhf_asr.trainer.validate import validate_training_run

    shutil.copytree(checkpoint, tmp_path / "checkpoint-1")
    shutil.copytree(checkpoint, tmp_path / "checkpoint-10")
    args = parse_args(train_argv(ws, tmp_path, "--resume_from_checkpoint", "True")[1:])
    validate_training_run(*args)
    assert args[2].resume_from_checkpoint == str(tmp_path / "checkpoint-10")


# ---- reusing an output folder ----


def test_output_folder_of_another_run_is_refused_or_cleared(ws, tmp_path, capsys):
    from rlhf_asr.commands.train import parse_args
    from rlhf_asr.trainer.validate import validate_training_run

    (tmp_path / "checkpoint-9").mkdir()
    rc, _, err = run(capsys, *train_argv(ws, tmp_path))
    assert_one_line(rc, err, "checkpoint-9", "--overwrite_output_dir")
    validate_training_run(*parse_args(train_argv(ws, tmp_path, "--overwrite_output_dir", "True")[1:]))
    assert not (tmp_path / "checkpoint-9").exists()


# ---- base model files ----


@pytest.mark.parametrize("command", ["train", "evaluate", "transcribe"])
def test_truncated_model_weights_are_one_line(command, ws, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(ws["model"], model)
    _truncate(model / "model.safetensors")
    argv = {
        "train": train_argv(ws, tmp_path / "out", "--base_model", str(model)),
        "evaluate": ["evaluate", "--model", model, "--data", ws["train"], "--output", tmp_path / "m.json"],
        "transcribe": ["transcribe", "--model", model, ws["root"] / "a0.wav"],
    }[command]
    rc, _, err = run(capsys, *argv)
    assert_one_line(rc, err, "model.safetensors", "--base_model" if command == "train" else "--model")


# ---- non-finite training ----


def _assert_all_saved_finite(folder: Path) -> None:
    for file in folder.rglob("*.safetensors"):
        for name, tensor in load_file(file).items():
            assert torch.isfinite(tensor).all(), (file, name)


def test_absurd_learning_rate_stops_with_one_line_and_saves_nothing_non_finite(ws, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run(capsys, *train_argv(ws, out, "--learning_rate", "1e30", "--max_steps", "2"))
    assert_one_line(rc, err, "not finite", "--learning_rate", only_line=False)
    assert not (out / "adapter_model.safetensors").exists()
    _assert_all_saved_finite(out)


def test_injected_nan_loss_stops_before_the_weights_change(ws, tmp_path, capsys, monkeypatch):
    """A NaN in the loss (as NaN audio gives) at step 2: checkpoint-1 stays, nothing after it is written."""
    from rlhf_asr.loss.objectives.orpo import ORPO  # the default --loss

    real, calls = ORPO.compute, []

    def nan_after_first_step(self, scores):
        result = real(self, scores)
        calls.append(1)
        if len(calls) > 1:
            result = dataclasses.replace(result, loss=result.loss * float("nan"))
        return result

    monkeypatch.setattr(ORPO, "compute", nan_after_first_step)
    out = tmp_path / "out"
    rc, _, err = run(capsys, *train_argv(ws, out, "--max_steps", "3", "--save_strategy", "steps", "--save_steps", "1"))
    assert_one_line(rc, err, "step 2", "gradient", only_line=False)
    assert (out / "checkpoint-1").is_dir() and not (out / "checkpoint-2").exists()
    assert not (out / "adapter_model.safetensors").exists()
    _assert_all_saved_finite(out)


def test_divergence_is_warned_once(rlhf_log):
    from types import SimpleNamespace

    from rlhf_asr.trainer.guards import FiniteTrainingGuard, NonFiniteTrainingError

    guard, args, state = FiniteTrainingGuard(), SimpleNamespace(fp16=False), SimpleNamespace(global_step=1)
    for loss, grad_norm in [(2.0, 4.0), (1.5, 3.0), (14.0, 9e13), (20.0, 9e14)]:
        guard.on_log(args, state, None, logs={"loss": loss, "grad_norm": grad_norm})
    assert [r.levelname for r in rlhf_log.records if "diverging" in r.getMessage()] == ["WARNING"]
    with pytest.raises(NonFiniteTrainingError, match="not finite"):
        guard.on_log(args, state, None, logs={"loss": 1.0, "grad_norm": math.nan})


def test_merge_refuses_a_nan_adapter(ws, checkpoint, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    shutil.copytree(checkpoint, adapter)
    tensors = load_file(adapter / "adapter_model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, adapter / "adapter_model.safetensors")
    rc, _, err = run(capsys, "merge", str(adapter), str(tmp_path / "merged"))
    assert_one_line(rc, err, "NaN", "adapter_model.safetensors")
    assert not (tmp_path / "merged").exists()


# ---- other commands ----


def test_argparse_errors_are_one_line(tmp_path, capsys):
    rc, _, err = run(capsys, "evaluate", "--data", "x.jsonl")
    assert_one_line(rc, err, "--model", "rlhf-asr evaluate --help")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["transcribe", "--model", "tiny.en", "--batch_size", "0", "a.wav"], "--batch_size"),
        (["transcribe", "--model", "tiny.en", "--num_beams", "0", "a.wav"], "--num_beams"),
        (["evaluate", "--model", "m", "--data", "d", "--output", "o.json", "--max_rows", "0"], "--max_rows"),
        (["evaluate", "--model", "m", "--data", "d", "--output", "o.json", "--batch_size", "0"], "--batch_size"),
        (["make-pairs", "--model", "m", "--data", "d", "--output", "o", "--num_candidates", "0"], "--num_candidates"),
    ],
)
def test_zero_counts_are_one_line(argv, needle, capsys):
    rc, _, err = run(capsys, *argv)
    assert_one_line(rc, err, needle, "at least 1")


def test_transcribe_names_a_missing_audio_file(ws, tmp_path, capsys):
    rc, _, err = run(capsys, "transcribe", "--model", str(ws["model"]), str(tmp_path / "gone.wav"))
    line = assert_one_line(rc, err, "gone.wav", "no such file")
    assert "System error" not in line


def test_evaluate_output_folder_is_refused_before_decoding(ws, tmp_path, capsys):
    (tmp_path / "metrics").mkdir()
    rc, _, err = run(
        capsys,
        "evaluate",
        "--model",
        str(ws["model"]),
        "--data",
        str(ws["train"]),
        "--output",
        str(tmp_path / "metrics"),
    )
    assert_one_line(rc, err, "--output", "is a folder")


def test_import_ct2_onto_an_existing_file(tmp_path, capsys):
    (tmp_path / "dst").write_text("x")
    rc, _, err = run(capsys, "import-ct2", "tiny.en", str(tmp_path / "dst"))
    assert_one_line(rc, err, "dst", "existing file")


def test_a_number_option_that_may_be_none_takes_none(capsys):
    """--help says "None: no check": the command line takes it, a non-number is still one line."""
    from rlhf_asr.commands.evaluate import parse_args as evaluate_args
    from rlhf_asr.commands.transcribe import parse_all

    _, long_form = parse_all(["a.wav", "--model", "m", "--no_speech_threshold", "None", "--logprob_threshold", "none"])
    assert long_form.no_speech_threshold is None and long_form.logprob_threshold is None
    assert long_form.compression_ratio_threshold == 2.4  # untouched: its default
    assert evaluate_args(["--model", "m", "--data", "d", "--output", "o.json", "--max_rows", "None"]).max_rows is None
    rc, _, err = run(capsys, "transcribe", "--model", "m", "--no_speech_threshold", "often", "a.wav")
    assert_one_line(rc, err, "invalid float value: 'often'")
    rc, _, err = run(capsys, "transcribe", "--model", "m", "--temperature", "None", "a.wav")
    assert_one_line(rc, err, "invalid float value: 'None'")  # a list of temperatures has no None
