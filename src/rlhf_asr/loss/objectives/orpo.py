"""ORPO as an objective: the NLL of the chosen plus alpha times the odds-ratio loss of each pair.

Hong, Lee, Thorne (2024), "ORPO: Monolithic Preference Optimization without Reference Model",
https://arxiv.org/abs/2403.07691. Reference implementation: TRL's `ORPOTrainer.odds_ratio_loss`
(https://github.com/huggingface/trl/blob/main/trl/experimental/orpo/orpo_trainer.py).

    L = NLL(chosen) + alpha * mean over pairs of -log sigmoid(log odds(c) - log odds(r)),
    odds(y) = P / (1 - P),  P = exp(mean per-token log-prob)

The log-odds are loss/orpo.py's `log_odds` (stable at both ends, issue 22). `orpo_loss` itself is
not called: it averages over every row, and a ragged K-best needs the mean over present pairs
(pairwise.py), each present rejected one pair. For K = 2 this equals `orpo_loss` in value,
gradient and metrics (tests/loss/test_objective_pairwise.py). No reference model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rlhf_asr.loss.objectives.base import (
    CandidateScores,
    Objective,
    ObjectiveOutput,
    candidate_means,
    masked_mean,
    require,
)
from rlhf_asr.loss.objectives.pairwise import chosen_pair_means, pair_mask, pair_output
from rlhf_asr.loss.orpo import log_odds


def log_odds_ratio(chosen_means: torch.Tensor, rejected_means: torch.Tensor) -> torch.Tensor:
    """log odds(chosen) - log odds(rejected) per pair.

    Args:
        chosen_means: [B, K-1] the chosen's mean per-token log-prob in each pair (< 0).
        rejected_means: [B, K-1] each rejected's mean per-token log-prob (< 0).
    Returns:
        [B, K-1]; the pair's loss is -log sigmoid of it.
    """
    return log_odds(chosen_means) - log_odds(rejected_means)


@dataclass(frozen=True)
class ORPO(Objective):
    """ORPO over the pairs (chosen, each present rejected); the trainer's default objective."""

    name = "orpo"

    alpha: float = field(
        default=0.1,
        metadata={
            "help": "Weight of the odds-ratio term: the paper's lambda, TRL's ORPOConfig `beta`. 0.1 in the paper "
            "and TRL (typical 0.05-1); 0 leaves the NLL alone (use the sft objective for that)."
        },
    )

    def __post_init__(self) -> None:
        require(self.alpha >= 0, f"orpo: alpha must be >= 0, got {self.alpha}")

    def compute(self, scores: CandidateScores) -> ObjectiveOutput:
        chosen = chosen_pair_means(scores)  # [B, K-1]
        rejected = candidate_means(scores)[:, 1:]  # [B, K-1]
        ratio = log_odds_ratio(chosen, rejected)  # [B, K-1]
        log_sigmoid_ratio = F.logsigmoid(ratio)  # [B, K-1]
        mask = pair_mask(scores)
        return pair_output(
            scores,
            -log_sigmoid_ratio,
            # rewards alpha * mean log-prob, logps the means over the odds span, as TRL and the trainer log them
            (self.alpha * chosen, self.alpha * rejected),
            (chosen, rejected),
            pair_weight=self.alpha,
            nll_weight=1.0,  # ORPO's supervised term is not weighted
            log_odds_ratio=masked_mean(log_sigmoid_ratio, mask).detach(),  # TRL's names: mean log sigmoid(ratio)
            log_odds_chosen=masked_mean(ratio, mask).detach(),  # ... and mean ratio
        )
