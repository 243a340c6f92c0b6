"""`--loss` and its weights (trainer/objective_options.py), and the trainer's loss through the objectives.

`--loss orpo`, the default, must train exactly as the trainer did before the objectives: the same
loss, gradients and logged metrics (names, order and values) as `preference_loss`.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import WhisperForConditionalGeneration

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.data.collator import PreferenceCollator
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.loss.objectives import OBJECTIVES
from rlhf_asr.loss.orpo import preference_loss
from rlhf_asr.model.engine import PreferenceWhisper
from rlhf_asr.model.loading import load_processor
from rlhf_asr.trainer.config import ORPOConfig, PreferenceConfig
from rlhf_asr.trainer.objective_options import NOT_WIRED, WEIGHTS, training_objective, weights_of
from rlhf_asr.trainer.orpo_trainer import ORPOTrainer
from rlhf_asr.trainer.preference_trainer import PreferenceTrainer
from rlhf_asr.trainer.run import build_dataset
from rlhf_asr.trainer.validate import validate_training_run
from train_fixtures import train_argv


def _config(tmp_path, *extra: str):
    return parse_training_args(train_argv({"model": tmp_path, "train": tmp_path / "t.jsonl"}, tmp_path, *extra))[2]


def test_old_names_are_the_new_classes():
    assert ORPOConfig is PreferenceConfig and ORPOTrainer is PreferenceTrainer


def test_every_weight_of_a_wired_objective_is_a_training_option():
    """A new objective's weight reaches it only as a PreferenceConfig field listed in WEIGHTS."""
    options = {field.name for field in dataclasses.fields(PreferenceConfig)}
    for name, cls in OBJECTIVES.items():
        if name not in NOT_WIRED:
            missing = {field.name for field in dataclasses.fields(cls)} - (options & set(WEIGHTS))
            assert not missing, (name, missing)


@pytest.mark.parametrize(
    ("extra", "name", "weights"),
    [
        ((), "orpo", {"alpha": 0.1}),
        (("--alpha", "0",), "orpo", {"alpha": 0.0}),  # NLL only, as before --loss (help: --loss sft)
        (("--loss", "sft"), "sft", {}),
        (("--loss", "dpo", "--alpha", "0.1"), "dpo", {"beta": 0.1, "label_smoothing": 0.0, "rpo_alpha": 0.0}),
        (("--loss", "dpo", "--beta", "0.3", "--rpo_alpha", "1"), "dpo",
         {"beta": 0.3, "label_smoothing": 0.0, "rpo_alpha": 1.0}),
        (("--loss", "simpo"), "simpo", {"beta": 2.0, "gamma": 1.0, "label_smoothing": 0.0, "cpo_alpha": 0.0}),
        (("--loss", "simpo", "--simpo_gamma", "0.5", "--label_smoothing", "0.1"), "simpo",
         {"beta": 2.0, "gamma": 0.5, "label_smoothing": 0.1, "cpo_alpha": 0.0}),
        (("--loss", "mwer"), "mwer", {"ce_weight": 0.01, "reference_in_list": True}),
        (("--loss", "mwer", "--ce_weight", "0.1", "--reference_in_list", "False"), "mwer",
         {"ce_weight": 0.1, "reference_in_list": False}),
    ],
)  # fmt: skip
def test_loss_and_weights_build_the_objective(tmp_path, extra, name, weights):
    objective = training_objective(_config(tmp_path, *extra))
    assert objective.name == name and weights_of(objective) == weights


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--loss", "mwer", "--streaming", "--max_steps", "2", "--train_data", "prefs.parquet"),
         "--loss mwer trains on K-best rows (make-pairs --nbest), which a JSON-lines manifest holds: not with "
         "--streaming"),
        (("--reference_in_list", "False"), "--reference_in_list False: --loss orpo does not read it (its weights "
         "are --alpha); leave it out, or use --loss mwer"),
        (("--loss", "mwer", "--ce_weight", "-1"), "mwer: ce_weight must be >= 0, got -1"),
        (("--beta", "0.2"), "--beta 0.2: --loss orpo does not read it (its weights are --alpha); leave it out, "
         "or use --loss dpo or simpo"),
        (("--loss", "sft", "--alpha", "0"), "--alpha 0: --loss sft does not read it (it has no weights)"),
        (("--loss", "dpo", "--gamma", "1"), "--gamma 1: --loss dpo does not read it"),
        (("--loss", "simpo", "--rpo_alpha", "1"), "--rpo_alpha 1: --loss simpo does not read it"),
        (("--loss", "dpo", "--beta", "-1"), "dpo: beta must be > 0, got -1"),
        (("--loss", "dpo", "--beta", "inf"), "--beta must be a finite number, got inf"),
        (("--loss", "simpo", "--label_smoothing", "0.5"), "simpo: label_smoothing must be in [0, 0.5)"),
        (("--loss", "dpo", "--rejected_scope", "diverging"), "--loss dpo compares whole transcripts"),
        (("--loss", "dpo", "--augment_config_path", "aug.json"), "not with --augment_config_path"),
        (("--loss", "dpo", "--streaming", "--max_steps", "2", "--train_data", "prefs.parquet"),
         "not with --streaming training"),
    ],
)  # fmt: skip
def test_what_an_objective_cannot_train_with_is_one_line_before_loading(tmp_path, capsys, extra, message):
    # no model or manifest exists: refused before either is looked at
    argv = ["train", *train_argv({"model": tmp_path / "none", "train": tmp_path / "none.jsonl"}, tmp_path, *extra)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert message in err, err


def test_api_train_takes_loss_and_weights_and_refuses_as_the_command(tmp_path):
    import rlhf_asr

    with pytest.raises(UserInputError, match="--loss dpo compares whole transcripts"):
        rlhf_asr.train(tmp_path / "p.jsonl", output_dir=tmp_path, loss="dpo", rejected_scope="diverging")
    with pytest.raises(UserInputError, match="--loss bogus: choose one of orpo, sft, dpo, simpo, mwer"):
        rlhf_asr.train(tmp_path / "p.jsonl", output_dir=tmp_path, loss="bogus")
    with pytest.raises(UserInputError, match="--gamma 0.5: --loss dpo does not read it"):
        rlhf_asr.train(tmp_path / "p.jsonl", output_dir=tmp_path, loss="dpo", gamma=0.5)


def test_help_lists_the_objective_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--loss {orpo,sft,dpo,simpo,mwer}", "--beta", "--gamma", "--simpo_gamma", "--rpo_alpha",
                   "--ce_weight", "--reference_in_list"):  # fmt: skip
        assert option in text, option
    assert "TRL's DPOConfig `beta`" in text and "TRL's CPOConfig spells it simpo_gamma" in text


# ---- --loss orpo is the trainer's ORPO, bit for bit ----


def _old_metrics(out: dict, result) -> dict[str, float]:
    """The trainer's ORPO metrics before the objectives (one process: gather is the identity)."""
    chosen_rewards, rejected_rewards = result.chosen_rewards, result.rejected_rewards
    values = {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "logps/chosen": (out["chosen_odds_logps"] / out["chosen_odds_tokens"]).detach().mean(),
        "logps/rejected": (out["rejected_logps"] / out["rejected_tokens"]).detach().mean(),
        "nll_loss": result.nll_loss.mean(),
        "log_odds_ratio": result.log_odds_ratio.mean(),
        "log_odds_chosen": result.log_odds_chosen.mean(),
    }
    return {key: float(value) for key, value in values.items()}


@pytest.mark.parametrize("scope", ["all", "diverging"])
@pytest.mark.parametrize("alpha", ["0.1", "0.7", "0"])
def test_loss_orpo_gives_the_loss_gradients_and_metrics_of_preference_loss(workspace, tmp_path, scope, alpha):
    argv = train_argv(workspace, tmp_path, "--loss", "orpo", "--alpha", alpha, "--rejected_scope", scope)
    argv += ["--eval_strategy", "no"]  # a Trainer without a held-out set
    _, data_args, config = parse_training_args(argv)
    processor = load_processor(str(workspace["model"]))
    dataset, _ = build_dataset(str(workspace["train"]), data_args, processor, TranscriptEncoder(processor.tokenizer))
    collator = PreferenceCollator(processor.tokenizer.eos_token_id, completion_only_loss=True, rejected_scope=scope)
    batch = collator([dataset[i] for i in range(len(dataset))])
    torch.manual_seed(0)
    engine = PreferenceWhisper(WhisperForConditionalGeneration.from_pretrained(workspace["model"]).train())
    params = [p for p in engine.parameters() if p.requires_grad]

    out = engine(**batch)
    old = preference_loss(out, alpha=config.alpha)
    old_grads = torch.autograd.grad(old.loss, params, allow_unused=True)
    old_metrics = _old_metrics(out, old)

    trainer = PreferenceTrainer(model=engine, args=config)
    loss = trainer.compute_loss(engine, dict(batch))
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert torch.equal(loss, old.loss)
    for new, before in zip(grads, old_grads):
        assert (new is None) == (before is None)
        assert new is None or torch.equal(new, before)
    stored = {key: values[0] for key, values in trainer._stored_metrics["train"].items()}
    assert list(stored) == list(old_metrics)  # names and order: the log line is the same
    assert stored == old_metrics  # the same floats


def test_validation_accepts_every_loss(workspace, tmp_path):
    for loss in ("orpo", "sft", "dpo", "simpo", "mwer"):
        argv = train_argv(workspace, tmp_path / loss, "--loss", loss)
        validate_training_run(*parse_training_args(argv))
