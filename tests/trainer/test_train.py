"""Training runs end to end on a tiny random Whisper (`trainer/run.py`).

Outputs, metrics, resume, AdaLoRA, the encoder cache.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.errors import UserInputError
from rlhf_asr.trainer.run import make_encoder_cache, run_training
from train_fixtures import METRICS, PAIRS, train, train_argv, write_manifest
from whisper_fixtures import make_tiny_whisper_dir


def test_lora_run_writes_adapter_metrics_curves_and_eval(workspace, tmp_path, capsys, rlhf_log):
    out = tmp_path / "lora"
    summary = train(
        workspace,
        out,
        "--use_adalora",
        "False",
        "--num_train_epochs",
        "2",
        "--test_data",
        str(workspace["test"]),
        "--eval_wer",
        "True",
    )
    assert summary["global_step"] == 6 and summary["train_rows"] == 6
    assert "loss" not in capsys.readouterr().out  # stdout is for a command's products; metrics go to the log
    assert "step 6: eval_loss=" in rlhf_log.text and "nll_loss=" in rlhf_log.text
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "processor_config.json",
        "training_curves.png",
        "run_summary.json",
    ):
        assert (out / name).is_file(), name
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    train_logs = [row for row in state["log_history"] if "loss" in row]
    eval_logs = [row for row in state["log_history"] if "eval_loss" in row]
    assert len(eval_logs) == 2
    wer_logs = [row for row in state["log_history"] if "eval_wer" in row]
    assert len(wer_logs) == 2 and wer_logs[0]["eval_wer"] > 0 and 0 <= wer_logs[0]["eval_preference_accuracy"] <= 1
    # a speech-only test set: no hallucination rate (not measured, so not 0); the others are there
    assert "eval_hallucination_rate" not in wer_logs[0]
    assert 0 <= wer_logs[0]["eval_repetition_rate"] <= 1 and wer_logs[0]["eval_insertion_rate"] >= 0
    for key in METRICS:
        assert key in train_logs[0] and f"eval_{key}" in eval_logs[0], key
    # learning happens: the chosen transcripts become more likely
    assert train_logs[-1]["nll_loss"] < train_logs[0]["nll_loss"]


def test_resume_continues_to_the_same_final_state(workspace, tmp_path):
    full = tmp_path / "full"
    train(
        workspace,
        full,
        "--use_adalora",
        "False",
        "--max_steps",
        "6",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--plot",
        "False",
    )
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint-3").symlink_to(full / "checkpoint-3", target_is_directory=True)
    summary = train(
        workspace,
        resumed,
        "--use_adalora",
        "False",
        "--max_steps",
        "6",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--plot",
        "False",
        "--resume_from_checkpoint",
        str(resumed / "checkpoint-3"),
    )
    assert summary["global_step"] == 6
    a = load_file(full / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
    start = load_file(full / "checkpoint-3" / "adapter_model.safetensors")
    assert any(not torch.allclose(start[key], a[key]) for key in a)  # steps 4-6 changed the adapter


def test_adalora_resume_after_pruning_began_is_exact(workspace, tmp_path):
    """12 steps: warm-up to step 1, pruning on steps 2-9, final budget from step 10; resume at step 6.

    The checkpoint's adapter is saved pruned, and the importance averages that decide the next
    pruning live only on the rank allocator: both must come back for the same final adapter.
    """
    common = (
        "--use_adalora",
        "True",
        "--max_steps",
        "12",
        "--adalora_init_r",
        "6",
        "--adalora_target_r",
        "2",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--plot",
        "False",
    )
    full = tmp_path / "full"
    train(workspace, full, *common)
    checkpoint = json.loads((full / "checkpoint-6" / "adapter_config.json").read_text())
    assert checkpoint["rank_pattern"], "pruning had not begun at the resume point"
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint-6").symlink_to(full / "checkpoint-6", target_is_directory=True)
    summary = train(workspace, resumed, *common, "--resume_from_checkpoint", str(resumed / "checkpoint-6"))
    assert summary["global_step"] == 12
    a = load_file(full / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(b[key], a[key]), key  # same CPU kernels, data order and RNG: bit for bit
    final_pattern = json.loads((full / "adapter_config.json").read_text())["rank_pattern"]
    assert json.loads((resumed / "adapter_config.json").read_text())["rank_pattern"] == final_pattern
    start = load_file(full / "checkpoint-6" / "adapter_model.safetensors")
    assert start.keys() != a.keys() or any(
        start[k].shape != a[k].shape or not torch.allclose(start[k], a[k]) for k in a
    )


def test_adalora_reallocates_rank(workspace, tmp_path, rlhf_log, recwarn):
    summary = train(
        workspace,
        tmp_path / "ada",
        "--use_adalora",
        "True",
        "--max_steps",
        "12",
        "--adalora_init_r",
        "6",
        "--adalora_target_r",
        "2",
        "--plot",
        "False",
    )
    ranks = [rank for _, rank in summary["adalora_rank_history"]]
    assert len(ranks) == 12
    assert ranks[-1] < ranks[0]
    # Modules pruned to rank 0 are reported by us, not as PEFT's "unsharded DeepSpeed" false alarm,
    # and the saved adapter still merges.
    assert "AdaLoRA has pruned" in rlhf_log.text
    assert not [w for w in recwarn if "invalid shape" in str(w.message)]
    assert cli_main(["merge", str(tmp_path / "ada"), str(tmp_path / "merged")]) == 0


def test_adalora_training_loss_includes_the_orthogonal_regulariser(workspace, tmp_path):
    """PEFT adds orth_reg_weight (0.5) * R only in AdaLoraModel.forward, which the engine bypasses."""
    out = tmp_path / "ada_reg"
    train(workspace, out, "--use_adalora", "True", "--max_steps", "2", "--alpha", "0.7", "--plot", "False")
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    rows = [row for row in state["log_history"] if "loss" in row]
    assert len(rows) == 2
    for row in rows:
        assert row["orth_reg"] > 0.1
        orpo = row["nll_loss"] - 0.7 * row["log_odds_ratio"]  # log_odds_ratio is -L_OR
        assert row["loss"] == pytest.approx(orpo + 0.5 * row["orth_reg"], rel=1e-5)


def test_lora_training_loss_has_no_orthogonal_regulariser(workspace, tmp_path):
    out = tmp_path / "lora_reg"
    train(workspace, out, "--use_adalora", "False", "--max_steps", "1", "--plot", "False")  # default --alpha 0.1
    history = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())["log_history"]
    row = next(r for r in history if "loss" in r)
    assert "orth_reg" not in row
    assert row["loss"] == pytest.approx(row["nll_loss"] - 0.1 * row["log_odds_ratio"], rel=1e-5)


def test_full_finetuning_with_frozen_encoder_and_cache(workspace, tmp_path):
    out = tmp_path / "full_ft"
    summary = train(
        workspace,
        out,
        "--peft",
        "none",
        "--freeze_encoder",
        "True",
        "--encoder_cache",
        "memory",
        "--checkpoint_decoder",
        "True",
        "--num_train_epochs",
        "2",
        "--learning_rate",
        "1e-4",
        "--plot",
        "False",
    )
    assert summary["global_step"] == 6
    weights = load_file(out / "model.safetensors")
    original = load_file(workspace["model"] / "model.safetensors")
    name = "model.encoder.layers.0.fc1.weight"
    torch.testing.assert_close(weights[name], original[name])  # frozen
    name = "model.decoder.layers.0.fc1.weight"
    assert not torch.allclose(weights[name], original[name])  # trained


def _first_logged_loss(output: Path) -> float:
    state = json.loads(sorted(output.glob("checkpoint-*/trainer_state.json"))[-1].read_text())
    return next(row["loss"] for row in state["log_history"] if "loss" in row)


def test_bf16_mixed_precision_trains_on_cpu(workspace, tmp_path, rlhf_log):
    common = ("--use_adalora", "False", "--max_steps", "2", "--plot", "False")
    train(workspace, tmp_path / "fp32", *common)
    summary = train(workspace, tmp_path / "bf16", *common, "--bf16", "True")
    assert "bf16 mixed precision instead of the default fp16" in rlhf_log.text
    assert summary["global_step"] == 2
    fp32_loss, bf16_loss = _first_logged_loss(tmp_path / "fp32"), _first_logged_loss(tmp_path / "bf16")
    assert bf16_loss != fp32_loss  # autocast ran: same seed and data, bf16 rounding
    assert bf16_loss == pytest.approx(fp32_loss, rel=1e-2)


def test_missing_model_path_is_one_clear_error(workspace, tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        train(workspace, tmp_path / "x", "--base_model", str(tmp_path / "no-such-model"))


def test_encoder_cache_needs_frozen_encoder(workspace, tmp_path):
    with pytest.raises(UserInputError, match="freeze_encoder"):
        train(workspace, tmp_path / "x", "--encoder_cache", "memory", "--max_steps", "1")


def test_saved_adapter_names_the_model_the_user_gave(workspace, tmp_path, monkeypatch):
    """`tiny.en` is converted into a cache folder; the adapter must say `tiny.en`, not that folder."""
    import shutil

    from rlhf_asr.model.loading import resolve_adapter_base

    cache = tmp_path / "cache"
    shutil.copytree(workspace["model"], cache / "whisper-tiny.en")  # stands in for the converted weights
    monkeypatch.setenv("RLHF_ASR_CACHE", str(cache))
    out = tmp_path / "portable"
    train(workspace, out, "--base_model", "tiny.en", "--max_steps", "1", "--plot", "False", "--save_strategy", "no")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny.en"
    assert (out / "preprocessor_config.json").is_file()  # what CTranslate2's converter and faster-whisper read
    # On another machine the name resolves to that machine's own copy.
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "elsewhere"))
    shutil.copytree(workspace["model"], tmp_path / "elsewhere" / "whisper-tiny.en")
    assert resolve_adapter_base(out) == str(tmp_path / "elsewhere" / "whisper-tiny.en")


# ---- encoder cache: keyed by audio and model, never by row position ----

CACHED = ("--use_adalora", "False", "--freeze_encoder", "True", "--plot", "False", "--save_strategy", "no")


@pytest.fixture(scope="module")
def other_audio(workspace):
    """Manifests whose rows hold other audio than the training manifest's rows at the same positions."""
    root = workspace["root"]
    return {
        "train": write_manifest(root, "other_train", PAIRS, tone=10),
        "test": write_manifest(root, "other_test", PAIRS[:2], tone=20),
        "model": make_tiny_whisper_dir(root, seed=1),
    }


def train_with_cache(workspace, output: Path, *extra: str):
    """(summary, cache): the run's cache is made as `rlhf-asr train` makes it, kept to count hits."""
    model_args, data_args, config = parse_training_args(train_argv(workspace, output, *extra))
    cache = make_encoder_cache(config, model_args, data_args)
    return run_training(model_args, data_args, config, encoder_cache=cache), cache


def test_evaluation_with_encoder_cache_equals_evaluation_without(workspace, other_audio, tmp_path):
    # Row i of the test set is other audio than training row i: it must never read that row's output.
    common = (
        *CACHED,
        "--max_steps",
        "6",
        "--test_data",
        str(other_audio["test"]),
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "3",
    )
    cached, cache = train_with_cache(workspace, tmp_path / "cached", *common, "--encoder_cache", "memory")
    plain = train(workspace, tmp_path / "plain", *common)
    # Epoch 1 and the first evaluation compute everything (6 + 2 misses); epoch 2 and the second
    # evaluation read their own entries (6 + 2 hits), none of the other split's.
    assert (cache.misses, cache.hits) == (8, 8)
    # A random tiny model hardly attends to its audio (a 1 s clip is 1/30 of the window), so the
    # loss barely moves with the wrong encoder output; the same computations give the same bits.
    assert cached["final_eval"]["eval_loss"] == plain["final_eval"]["eval_loss"]
    assert cached["train_loss"] == plain["train_loss"]


def test_disk_encoder_cache_is_reused_only_for_the_same_audio_and_model(workspace, other_audio, tmp_path):
    out = tmp_path / "same_folder"
    one_epoch = (*CACHED, "--max_steps", "3", "--encoder_cache", "disk")
    _, first = train_with_cache(workspace, out, *one_epoch)
    assert (first.hits, first.misses) == (0, 6)
    # Another manifest (other audio) into the same output folder: nothing of the first run is read.
    other, second = train_with_cache(workspace, out, *one_epoch, "--train_data", str(other_audio["train"]))
    assert second.hits == 0
    uncached = train(
        workspace, tmp_path / "fresh", *CACHED, "--max_steps", "3", "--train_data", str(other_audio["train"])
    )
    assert other["train_loss"] == uncached["train_loss"]
    # Another model on the first run's audio: misses too.
    _, third = train_with_cache(workspace, out, *one_epoch, "--base_model", str(other_audio["model"]))
    assert third.hits == 0
    # The same audio through the same model: every output comes from the first run's files.
    _, fourth = train_with_cache(workspace, out, *one_epoch)
    assert (fourth.hits, fourth.misses) == (6, 0)


# ---- gradient checkpointing and untested parallel back ends ----


def test_gradient_checkpointing_trains_like_without(workspace, tmp_path):
    common = ("--use_adalora", "False", "--max_steps", "2", "--plot", "False", "--save_strategy", "no")
    plain = train(workspace, tmp_path / "plain", *common)
    checkpointed = train(workspace, tmp_path / "gc", *common, "--gradient_checkpointing", "True")
    assert checkpointed["global_step"] == 2
    assert checkpointed["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
    a, b = (
        load_file(tmp_path / "plain" / "adapter_model.safetensors"),
        load_file(tmp_path / "gc" / "adapter_model.safetensors"),
    )
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)


NO_SPEECH_PAIRS = [("", "you"), ("hello world", "yellow world"), ("", "Thank you."), ("good morning", "good mourning")]


def test_training_on_speech_and_no_speech_pairs(workspace, tmp_path, rlhf_log):
    """Rows with "chosen": "" (no speech) train next to speech rows, in the same batches, and --eval_wer
    reports the hallucination metrics of the test set's no-speech rows."""
    folder = tmp_path / "data"
    manifest = write_manifest(folder, "mixed", NO_SPEECH_PAIRS)
    out = tmp_path / "mixed-run"
    argv = train_argv(workspace, out, "--use_adalora", "False", "--max_steps", "2", "--plot", "False")
    argv[argv.index("--train_data") + 1] = str(manifest)
    argv += ["--test_data", str(manifest), "--eval_wer", "True", "--per_device_eval_batch_size", "4"]
    summary = run_training(*parse_training_args(argv))
    assert summary["train_rows"] == 4 and summary["train_rows_skipped"] == 0 and summary["global_step"] == 2
    history = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    assert all(math.isfinite(row["loss"]) for row in history if "loss" in row)
    assert "mixed.jsonl: 4 rows read (2 no-speech), 0 skipped" in rlhf_log.text
    (scores,) = [row for row in history if "eval_wer" in row]
    assert scores["eval_hallucination_rate"] in (0.0, 0.5, 1.0)  # of the 2 no-speech rows
    for key in ("eval_insertion_rate", "eval_repetition_rate"):
        assert 0 <= scores[key] <= (10 if key == "eval_insertion_rate" else 1), key


def test_the_task_prompt_is_out_of_the_loss_unless_asked(workspace, tmp_path):
    """TRL's ORPO scores the completion only; so does `train` by default (the prompt is the same on both sides)."""
    assert parse_training_args(train_argv(workspace, tmp_path / "a"))[2].completion_only_loss is True
    older = (["--disable_prompt_loss", "False"], ["--disable-prompt-loss", "no"], ["--no_disable_prompt_loss"])
    for flags in (["--completion_only_loss", "False"], ["--no_completion_only_loss"], *older):  # older: its old name
        config = parse_training_args(train_argv(workspace, tmp_path / "b", *flags))[2]
        assert config.completion_only_loss is False and config.disable_prompt_loss is False, flags
