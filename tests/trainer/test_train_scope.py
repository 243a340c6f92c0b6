"""`--rejected_scope diverging` in a real training run: what the trainer's loss reads from the engine.

Issue 22: the NLL is ORPO's supervised term over the whole chosen transcript; only the odds
ratio starts at the first token where chosen and rejected differ.
"""

from __future__ import annotations

import json

import torch
from transformers import WhisperForConditionalGeneration

from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.data.collator import PreferenceCollator
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.loss.orpo import preference_loss
from rlhf_asr.model.engine import PreferenceWhisper
from rlhf_asr.model.loading import load_processor
from rlhf_asr.trainer.run import build_dataset
from train_fixtures import PAIRS, train, train_argv

# One batch of all six pairs, so step 1's logged means do not depend on the sampler's order;
# LoRA's B starts at 0, so at step 1 the adapted model is the base model.
ONE_BATCH = ("--max_steps", "1", "--per_device_train_batch_size", str(len(PAIRS)), "--plot", "False")
SAVE = ("--save_strategy", "steps", "--save_steps", "1")


def _step_one_logs(workspace, output, *extra) -> dict:
    train(workspace, output, *ONE_BATCH, *SAVE, *extra)
    state = json.loads((output / "checkpoint-1" / "trainer_state.json").read_text())
    return next(row for row in state["log_history"] if "loss" in row)


def _expected(workspace, tmp_path, scope: str) -> dict:
    """The ORPO metrics of the untrained model on the whole training set, through the engine."""
    model_args, data_args, config = parse_training_args(train_argv(workspace, tmp_path / "unused"))
    processor = load_processor(str(workspace["model"]))
    encoder = TranscriptEncoder(processor.tokenizer)
    dataset, _ = build_dataset(str(workspace["train"]), data_args, processor, encoder)
    collator = PreferenceCollator(processor.tokenizer.eos_token_id, completion_only_loss=True, rejected_scope=scope)
    batch = collator([dataset[i] for i in range(len(dataset))])
    model = WhisperForConditionalGeneration.from_pretrained(workspace["model"]).eval()
    with torch.no_grad():
        result = preference_loss(PreferenceWhisper(model)(**batch), alpha=config.alpha)
    return {"nll_loss": float(result.nll_loss), "log_odds_chosen": float(result.log_odds_chosen)}


def test_diverging_scope_trains_the_nll_on_the_whole_chosen_and_the_odds_on_the_suffix(workspace, tmp_path):
    everything = _step_one_logs(workspace, tmp_path / "all")
    diverging = _step_one_logs(workspace, tmp_path / "diverging", "--rejected_scope", "diverging")
    # the same NLL: the shared prefix is not taken out of the supervised term
    assert abs(diverging["nll_loss"] - everything["nll_loss"]) < 1e-4 * abs(everything["nll_loss"])
    expected = _expected(workspace, tmp_path, "diverging")
    assert abs(diverging["nll_loss"] - expected["nll_loss"]) < 1e-4 * abs(expected["nll_loss"])
    # the odds ratio: chosen suffix against rejected suffix, not the whole chosen against a suffix
    assert abs(diverging["log_odds_chosen"] - expected["log_odds_chosen"]) < 1e-5, (diverging, expected)
    assert abs(diverging["log_odds_chosen"] - everything["log_odds_chosen"]) > 1e-3
