"""SimPO: Simple Preference Optimization, length-normalised and reference-free.

Meng, Xia, Chen (2024), "SimPO: Simple Preference Optimization with a Reference-Free Reward",
https://arxiv.org/abs/2405.14734. Reference implementation: TRL's `CPOTrainer.cpo_loss` with
`loss_type="simpo"` (https://github.com/huggingface/trl/blob/main/trl/experimental/cpo/cpo_trainer.py).

    logits = beta * (mean log pi(c) - mean log pi(r)) - gamma     (means per token)
    loss   = -log sigmoid(logits) * (1 - eps) - log sigmoid(-logits) * eps  [+ cpo_alpha * NLL(c)]
    reward = beta * mean log pi, detached

TRL writes the same as `logits = (mean_c - mean_r) - simpo_gamma / beta`, `-log sigmoid(beta *
logits)`; the SimPO repository sets `gamma_beta_ratio` = gamma / beta instead of gamma. With
`chosen_span_*` (--rejected_scope diverging) the chosen's mean is over its span in each pair, as
ORPO's odds are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlhf_asr.loss.objectives.base import (
    CandidateScores,
    Objective,
    ObjectiveOutput,
    candidate_means,
    require,
)
from rlhf_asr.loss.objectives.pairwise import (
    chosen_pair_means,
    label_smoothing_field,
    pair_output,
    require_label_smoothing,
    sigmoid_pair_loss,
)


def simpo_logits(chosen_means: torch.Tensor, rejected_means: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """SimPO's per-pair logits.

    Args:
        chosen_means: [B, K-1] the chosen's mean per-token log-prob in each pair.
        rejected_means: [B, K-1] each rejected's mean per-token log-prob.
        beta: reward scale; the paper's LLM settings 2.0-10.
        gamma: target reward margin; the paper's gamma / beta 0.1-0.8 (TRL's `simpo_gamma`, default 0.5).
    Returns:
        [B, K-1].
    """
    return beta * (chosen_means - rejected_means) - gamma


@dataclass(frozen=True)
class SimPO(Objective):
    """SimPO over the pairs (chosen, each present rejected)."""

    name = "simpo"

    beta: float = field(
        default=2.0,
        metadata={
            "help": "Reward scale (TRL's CPOConfig `beta`); the paper's settings 2.0-10 (TRL's default 0.1 is CPO's)."
        },
    )
    gamma: float = field(
        default=1.0,
        metadata={
            "help": "Target reward margin (TRL's `simpo_gamma`; the SimPO repo's gamma_beta_ratio times beta); "
            "the paper's gamma / beta 0.1-0.8."
        },
    )
    label_smoothing: float = label_smoothing_field()
    cpo_alpha: float = field(
        default=0.0,
        metadata={"help": "Weight of the chosen's NLL added (TRL's `cpo_alpha`; 0 for SimPO as published)."},
    )

    def __post_init__(self) -> None:
        require(self.beta > 0, f"simpo: beta must be > 0, got {self.beta}")
        require(self.gamma >= 0, f"simpo: gamma must be >= 0, got {self.gamma}")
        require_label_smoothing(self.name, self.label_smoothing)
        require(self.cpo_alpha >= 0, f"simpo: cpo_alpha must be >= 0, got {self.cpo_alpha}")

    def compute(self, scores: CandidateScores) -> ObjectiveOutput:
        chosen = chosen_pair_means(scores)  # [B, K-1]
        rejected = candidate_means(scores)[:, 1:]  # [B, K-1]
        logits = simpo_logits(chosen, rejected, self.beta, self.gamma)  # [B, K-1]
        pair_losses = sigmoid_pair_loss(logits, self.label_smoothing)
        # logps: the means, as TRL's CPO logs them for SimPO
        rewards = (self.beta * chosen, self.beta * rejected)
        return pair_output(scores, pair_losses, rewards, (chosen, rejected), nll_weight=self.cpo_alpha)
