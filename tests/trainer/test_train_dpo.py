"""`--loss dpo`, `simpo` and `sft` end to end on a tiny random Whisper, and DPO's precomputed reference.

The reference log-probs are the starting model's (LoRA: the adapters disabled), computed once
before training, stored in OUTPUT_DIR/reference_logps.safetensors with a fingerprint, read back by
a resumed run and recomputed, never reused, when the pairs or options change.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from peft import PeftModel
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.data.collator import PreferenceCollator
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.model.engine import PreferenceWhisper
from rlhf_asr.model.loading import load_processor
from rlhf_asr.trainer.reference import REFERENCE_FILE
from rlhf_asr.trainer.run import build_dataset
from train_fixtures import PAIRS, train, train_argv

# One batch of all six pairs (the reference pass's batch too: --per_device_eval_batch_size 8).
ONE_BATCH = ("--max_steps", "1", "--per_device_train_batch_size", str(len(PAIRS)), "--plot", "False")
SAVE = ("--save_strategy", "steps", "--save_steps", "1")


def _logged(output, step: int) -> dict:
    state = json.loads((output / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return next(row for row in state["log_history"] if "loss" in row and row["step"] == step)


def _all_pairs_batch(workspace, tmp_path):
    _, data_args, _ = parse_training_args(train_argv(workspace, tmp_path / "unused"))
    processor = load_processor(str(workspace["model"]))
    dataset, _ = build_dataset(str(workspace["train"]), data_args, processor, TranscriptEncoder(processor.tokenizer))
    collator = PreferenceCollator(processor.tokenizer.eos_token_id, completion_only_loss=True)
    return collator([dataset[i] for i in range(len(dataset))])


def test_dpo_starts_at_log_2_and_its_stored_reference_is_the_base_model(workspace, tmp_path, rlhf_log):
    out = tmp_path / "dpo"
    summary = train(workspace, out, *ONE_BATCH, *SAVE, "--loss", "dpo")
    row = _logged(out, 1)
    # LoRA's B starts at 0: the policy is the reference, every logit 0, the loss log 2
    assert row["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert abs(row["rewards/margins"]) < 1e-5 and abs(row["rewards/chosen"]) < 1e-5
    assert {"nll_loss", "rewards/accuracies", "logps/chosen", "logps/rejected"} <= set(row)
    assert "log_odds_ratio" not in row  # ORPO's, not DPO's
    assert summary["loss"] == "dpo" and summary["loss_weights"] == {
        "beta": 0.1,
        "label_smoothing": 0.0,
        "rpo_alpha": 0.0,
    }
    card = (out / "README.md").read_text()
    assert "# Whisper fine-tuned with DPO" in card and "| objective `--loss` | dpo |" in card
    assert "| DPO weights | `--beta` 0.1, `--label_smoothing` 0, `--rpo_alpha` 0 |" in card
    assert "computing the starting model's log-probs of 6 train pairs" in rlhf_log.text

    stored = load_file(out / REFERENCE_FILE)["train"]
    assert stored.shape == (6, 2)
    # A live pass of the trained model with its adapters disabled gives the stored numbers.
    base = WhisperForConditionalGeneration.from_pretrained(workspace["model"])
    trained = PeftModel.from_pretrained(base, out).eval()
    batch = _all_pairs_batch(workspace, tmp_path)
    with torch.no_grad():
        with trained.disable_adapter():
            live = PreferenceWhisper(trained)(**batch)
        adapted = PreferenceWhisper(trained)(**batch)
    torch.testing.assert_close(stored, torch.stack([live["chosen_logps"], live["rejected_logps"]], dim=1))
    assert not torch.allclose(adapted["chosen_logps"], live["chosen_logps"])  # the step moved the adapter

    # Other pairs (the first five rows) into the same folder: recomputed, never the stored rows reused.
    train(workspace, out, *ONE_BATCH, "--loss", "dpo", "--max_train_rows", "5", "--overwrite_output_dir", "True")
    assert "(the stored ones are for other pairs, options or another model)" in rlhf_log.text
    assert load_file(out / REFERENCE_FILE)["train"].shape == (5, 2)


def test_full_finetuning_dpo_takes_the_model_before_its_first_step_as_reference(workspace, tmp_path):
    """--peft none: no adapter to disable and no frozen copy; the reference pass runs before any step."""
    summary = train(
        workspace, tmp_path / "full", *ONE_BATCH, "--loss", "dpo", "--peft", "none", "--save_strategy", "no"
    )
    assert summary["train_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert load_file(tmp_path / "full" / REFERENCE_FILE)["train"].shape == (6, 2)


def test_resumed_dpo_run_reads_the_stored_reference_and_ends_where_the_full_run_does(workspace, tmp_path, rlhf_log):
    common = ("--loss", "dpo", "--beta", "0.5", "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3")
    common += ("--plot", "False")
    full = tmp_path / "full"
    train(workspace, full, *common)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint-3").symlink_to(full / "checkpoint-3", target_is_directory=True)
    (resumed / REFERENCE_FILE).write_bytes((full / REFERENCE_FILE).read_bytes())
    rlhf_log.clear()
    summary = train(workspace, resumed, *common, "--resume_from_checkpoint", str(resumed / "checkpoint-3"))
    assert summary["global_step"] == 6
    assert f"reference log-probs of 6 train pairs read from {resumed / REFERENCE_FILE}" in rlhf_log.text
    assert "computing the starting model's log-probs" not in rlhf_log.text
    a, b = load_file(full / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(b[key], a[key]), key  # same CPU kernels, data order, RNG and reference: bit for bit
    start = load_file(full / "checkpoint-3" / "adapter_model.safetensors")
    assert any(not torch.allclose(start[key], a[key]) for key in a)  # steps 4-6 changed the adapter


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["dpo", "simpo", "sft"])
def test_train_with_each_loss_then_evaluate(workspace, tmp_path, loss):
    out = tmp_path / loss
    argv = train_argv(workspace, out, "--loss", loss, "--max_steps", "2", "--plot", "False", "--save_strategy", "no")
    argv += ["--test_data", str(workspace["test"]), "--eval_strategy", "steps", "--eval_steps", "2"]
    assert cli_main(["train", *argv]) == 0
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["loss"] == loss and math.isfinite(summary["final_eval"]["eval_loss"])
    assert "eval_nll_loss" in summary["final_eval"]
    assert ("eval_rewards/margins" in summary["final_eval"]) == (loss != "sft")
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as handle:
        assert handle.keys()
    assert (out / REFERENCE_FILE).is_file() == (loss == "dpo")  # the held-out pairs' reference too
    metrics = tmp_path / f"{loss}.json"
    code = cli_main(["evaluate", "--model", str(out), "--data", str(workspace["test"]), "--output", str(metrics),
                     "--device", "cpu"])  # fmt: skip
    assert code == 0 and json.loads(metrics.read_text())["wer"] >= 0
