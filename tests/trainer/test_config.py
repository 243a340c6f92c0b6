"""Training options (`trainer/config.py`): the one parser, config files, defaults, and refusals before any loading."""

from __future__ import annotations

import pytest

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.commands.train import parse_args


def test_config_file_and_command_line_override(tmp_path):
    workspace = {"model": tmp_path / "model", "train": tmp_path / "train.jsonl"}  # parsed, not opened
    config = tmp_path / "run.yaml"
    config.write_text(
        f"base_model: {workspace['model']}\ntrain_data: {workspace['train']}\nalpha: 0.3\n"
        "learning_rate: 0.01\nuse_adalora: false\n"
    )
    model_args, data_args, orpo = parse_args(
        ["--config", str(config), "--learning_rate", "0.002", "--output_dir", str(tmp_path)]
    )
    assert orpo.alpha == 0.3 and orpo.learning_rate == 0.002
    assert model_args.peft_method == "lora" and data_args.train_data == str(workspace["train"])


def test_classic_defaults_and_boolean_forms(tmp_path):
    model_args, data_args, orpo = parse_args(["--output_dir", str(tmp_path), "--fp16", "False", "--use_adalora"])
    assert model_args.base_model == "tiny.en" and model_args.peft_method == "adalora"  # bundled: offline
    assert data_args.language is None and data_args.task == "transcribe"
    assert (data_args.min_audio_len, data_args.max_audio_len) == (0.5, 30.0)
    assert (orpo.learning_rate, orpo.num_train_epochs, orpo.per_device_train_batch_size) == (1e-3, 3, 8)
    assert (orpo.warmup_steps, orpo.fp16) == (50, False)


def test_disable_prompt_loss_is_the_older_name_of_completion_only_loss(tmp_path, monkeypatch):
    """Renamed to TRL's spelling; the older name still works as a keyword, an attribute, in the Python API
    and in a pickled training_args.bin (the flag: tests/trainer/test_train.py)."""
    import dataclasses
    import pickle

    from rlhf_asr import api
    from rlhf_asr.trainer.config import PreferenceConfig

    config = PreferenceConfig(output_dir=str(tmp_path), disable_prompt_loss=False)
    assert config.completion_only_loss is False and config.disable_prompt_loss is False
    assert "disable_prompt_loss" not in config.to_dict() and config.to_dict()["completion_only_loss"] is False
    assert dataclasses.replace(config, disable_prompt_loss=True).completion_only_loss is True
    config.disable_prompt_loss = True
    assert config.completion_only_loss is True
    old = pickle.loads(pickle.dumps(config))
    old.__dict__["disable_prompt_loss"] = not old.__dict__.pop("completion_only_loss")  # as saved before the rename
    assert pickle.loads(pickle.dumps(old)).completion_only_loss is False
    seen = {}
    monkeypatch.setattr("rlhf_asr.trainer.run.run_training", lambda *parts: seen.setdefault("config", parts[2]) and {})
    api.train(tmp_path / "pairs.jsonl", output_dir=tmp_path / "run", disable_prompt_loss=False)
    assert seen["config"].completion_only_loss is False


def test_defaults_are_lora_alpha_0_1_and_fp32_weights(tmp_path):
    """The documented runs (docs/results.md) use LoRA and alpha 0.1, as do the ORPO paper and TRL."""
    model_args, _, orpo = parse_args(["--output_dir", str(tmp_path)])
    assert model_args.peft_method == "lora" and not model_args.use_adalora
    assert orpo.alpha == 0.1
    assert model_args.model_dtype == "float32"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the CPU default")
def test_no_pinned_memory_without_a_gpu(tmp_path):
    """Pinned memory only speeds copies to a GPU; on CPU the DataLoader would warn at every epoch."""
    assert parse_args(["--output_dir", str(tmp_path)])[2].dataloader_pin_memory is False


REFUSED_ATTENTION = ["flex_attention", "flash_attention_2", "flash_attention_3", "bogus"]


@pytest.mark.parametrize("value", REFUSED_ATTENTION)
def test_attention_without_block_mask_support_is_refused_before_loading(tmp_path, capfd, value):
    # A missing manifest and model: the option must be refused before either is looked at.
    code = cli_main(
        [
            "train",
            "--attn_implementation",
            value,
            "--train_data",
            str(tmp_path / "none.jsonl"),
            "--base_model",
            str(tmp_path / "no-model"),
            "--output_dir",
            str(tmp_path),
        ]
    )
    err = capfd.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and f"--attn_implementation {value}" in err and "sdpa" in err


def test_8bit_with_frozen_encoder_is_refused_before_loading(tmp_path, capfd):
    code = cli_main(
        [
            "train",
            "--use_8bit",
            "True",
            "--freeze_encoder",
            "True",
            "--train_data",
            str(tmp_path / "none.jsonl"),
            "--base_model",
            str(tmp_path / "no-model"),
            "--output_dir",
            str(tmp_path),
        ]
    )
    err = capfd.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--use_8bit" in err and "--freeze_encoder" in err


@pytest.mark.parametrize("value", ["float7", "int8"])
def test_bad_model_dtype_is_refused(tmp_path, capfd, value):
    code = cli_main(
        ["train", "--model_dtype", value, "--train_data", str(tmp_path / "none.jsonl"), "--output_dir", str(tmp_path)]
    )
    err = capfd.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--model_dtype" in err


@pytest.mark.parametrize(
    "option", [["--deepspeed", "ds.json"], ["--fsdp", "full_shard"], ["--fsdp_config", "fsdp.json"]]
)
def test_deepspeed_and_fsdp_are_refused_before_loading(tmp_path, capsys, option):
    for name in ("ds.json", "fsdp.json"):
        (tmp_path / name).write_text("{}")
    option = [option[0], str(tmp_path / option[1])] if option[1].endswith(".json") else option
    argv = [
        "train",
        "--train_data",
        str(tmp_path / "missing.jsonl"),
        "--base_model",
        str(tmp_path / "no-model"),
        "--output_dir",
        str(tmp_path / "out"),
        *option,
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and option[0] in lines[0] and "not supported" in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("variable, name", [("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"), ("ACCELERATE_USE_FSDP", "FSDP")])
def test_accelerate_launch_with_deepspeed_or_fsdp_is_refused(tmp_path, capsys, monkeypatch, variable, name):
    monkeypatch.setenv(variable, "true")
    assert (
        cli_main(["train", "--train_data", str(tmp_path / "missing.jsonl"), "--output_dir", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and name in err and variable in err
