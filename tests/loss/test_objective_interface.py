"""The objectives' plug-in point: the registry, what each objective declares, input checks."""

from __future__ import annotations

import pytest
import torch
from objective_fixtures import inputs_for, ragged_scores, without

from rlhf_asr.errors import UserInputError
from rlhf_asr.loss.objectives import OBJECTIVES, CandidateScores, build_objective

# name: (needs_reference, needs_word_errors, min_candidates, uses_chosen_span)
DECLARED = {
    "orpo": (False, False, 2, True),
    "sft": (False, False, 1, True),
    "dpo": (True, False, 2, False),
    "simpo": (False, False, 2, True),
    "mwer": (False, True, 2, False),
}


def test_registry_holds_the_five_objectives_under_their_names():
    assert list(OBJECTIVES) == ["orpo", "sft", "dpo", "simpo", "mwer"]
    assert all(cls.name == name for name, cls in OBJECTIVES.items())


@pytest.mark.parametrize("name", list(DECLARED))
def test_each_objective_declares_what_it_reads(name):
    objective = build_objective(name)
    declared = (objective.needs_reference, objective.needs_word_errors, objective.min_candidates)
    assert (*declared, objective.uses_chosen_span) == DECLARED[name]


def test_unknown_name_is_refused_with_one_line_naming_the_choices():
    with pytest.raises(UserInputError) as caught:
        build_objective("ppo")
    message = str(caught.value)
    assert "\n" not in message and "'ppo'" in message
    assert "orpo, sft, dpo, simpo, mwer" in message


def test_unknown_weight_is_refused_naming_the_known_ones():
    with pytest.raises(UserInputError, match=r"objective dpo has no weight alpha: its weights are beta, "):
        build_objective("dpo", alpha=0.1)
    with pytest.raises(UserInputError, match="objective sft has no weight beta: it takes none"):
        build_objective("sft", beta=1.0)


@pytest.mark.parametrize(
    ("name", "weights", "words"),
    [
        ("orpo", {"alpha": -0.1}, "orpo: alpha must be >= 0"),
        ("dpo", {"beta": 0.0}, "dpo: beta must be > 0"),
        ("dpo", {"label_smoothing": 0.5}, "dpo: label_smoothing must be in [0, 0.5)"),
        ("dpo", {"rpo_alpha": -1.0}, "dpo: rpo_alpha must be >= 0"),
        ("simpo", {"beta": -2.0}, "simpo: beta must be > 0"),
        ("simpo", {"gamma": -0.5}, "simpo: gamma must be >= 0"),
        ("simpo", {"cpo_alpha": -1.0}, "simpo: cpo_alpha must be >= 0"),
        ("mwer", {"ce_weight": -0.01}, "mwer: ce_weight must be >= 0"),
    ],
)
def test_weights_out_of_range_are_refused(name, weights, words):
    with pytest.raises(UserInputError) as caught:
        build_objective(name, **weights)
    assert str(caught.value).startswith(words)


def test_weights_reach_the_objective_and_the_rest_keep_their_defaults():
    dpo = build_objective("dpo", beta=0.5)
    assert (dpo.beta, dpo.label_smoothing, dpo.rpo_alpha) == (0.5, 0.0, 0.0)
    assert build_objective("orpo").alpha == 0.1  # the paper's and the trainer's default
    assert (build_objective("mwer").ce_weight, build_objective("simpo").gamma) == (0.01, 1.0)
    with pytest.raises(AttributeError):
        dpo.beta = 1.0  # frozen: an objective's weights cannot drift in training


def test_every_weight_has_help_and_orpo_names_trl_spelling():
    for cls in OBJECTIVES.values():
        assert all(len(text) > 20 for text in cls.weight_help().values()), cls.name
    assert "TRL's ORPOConfig `beta`" in OBJECTIVES["orpo"].weight_help()["alpha"]
    assert "simpo_gamma" in OBJECTIVES["simpo"].weight_help()["gamma"]


# ---- CandidateScores ----


def test_pair_stacks_chosen_and_rejected_as_candidates_0_and_1():
    scores = CandidateScores.pair(
        torch.tensor([-1.0, -2.0]),
        torch.tensor([2, 3]),
        torch.tensor([-4.0, -5.0]),
        torch.tensor([4, 0]),
        chosen_span_logps=torch.tensor([-0.5, -1.0]),
        chosen_span_tokens=torch.tensor([1, 2]),
    )
    assert scores.logps.tolist() == [[-1.0, -4.0], [-2.0, -5.0]]
    assert scores.present.tolist() == [[True, True], [True, False]]
    assert scores.chosen_span_logps.tolist() == [[-0.5], [-1.0]]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"logps": torch.zeros(3)}, r"logps must be \[B, K\]"),
        ({"tokens": torch.ones(2, 2, dtype=torch.long)}, r"tokens must be \(2, 3\)"),
        ({"word_errors": torch.zeros(2, 2)}, r"word_errors must be \(2, 3\)"),
        ({"chosen_span_logps": torch.zeros(2, 3), "chosen_span_tokens": torch.ones(2, 3)}, r"must be \(2, 2\)"),
        ({"chosen_span_logps": torch.zeros(2, 2)}, "come together"),
        ({"tokens": torch.tensor([[1, 1, 1], [0, 1, 1]])}, "candidate 0 .* must be present"),
    ],
)
def test_scores_refuse_wrong_shapes_and_a_missing_chosen(fields, words):
    values = {"logps": -torch.ones(2, 3), "tokens": torch.ones(2, 3, dtype=torch.long), **fields}
    with pytest.raises(ValueError, match=words):
        CandidateScores(**values)


def test_objectives_refuse_what_they_cannot_use():
    scores, _ = ragged_scores()
    with pytest.raises(ValueError, match="dpo needs reference_logps"):
        build_objective("dpo")(without(scores, "reference_logps", "chosen_span"))
    with pytest.raises(ValueError, match="mwer needs word_errors"):
        build_objective("mwer")(without(scores, "word_errors", "chosen_span"))
    for name in ("dpo", "mwer"):
        with pytest.raises(ValueError, match=f"{name} compares whole candidates"):
            build_objective(name)(scores)
    one = CandidateScores(scores.logps[:, :1], scores.tokens[:, :1], word_errors=scores.word_errors[:, :1])
    for name in ("orpo", "dpo", "simpo", "mwer"):
        with pytest.raises(ValueError, match=f"{name} needs K >= 2"):
            build_objective(name)(one)
    assert torch.isfinite(build_objective("sft")(one).loss)


@pytest.mark.parametrize("name", list(DECLARED))
def test_loss_is_differentiable_and_metrics_are_detached_scalars(name):
    scores, _ = ragged_scores()
    objective = build_objective(name)
    out = objective(inputs_for(objective, scores))
    assert out.loss.shape == () and out.loss.requires_grad
    assert out.metrics and all(v.shape == () and not v.requires_grad for v in out.metrics.values())
    assert "nll_loss" in out.metrics
