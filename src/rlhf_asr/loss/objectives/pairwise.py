"""What the pairwise objectives (ORPO, DPO, SimPO) share: pairs, their mean, their metrics.

With K candidates per audio, the chosen (candidate 0) is compared with each present rejected
(candidates 1..K-1): K-1 pairs per audio. A pair's loss and metrics are averaged over all present
pairs of the batch, so an audio with three rejected weighs like three rows of one pair each, as it
would in TRL's one-pair-per-row layout. The NLL on the chosen counts each audio once. With K = 2
and every rejected present, this is exactly the one-pair formula averaged over the batch.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

import torch
import torch.nn.functional as F

from rlhf_asr.loss.objectives.base import (
    CandidateScores,
    ObjectiveOutput,
    candidate_means,
    masked_mean,
    present_values,
    require,
)
from rlhf_asr.loss.objectives.sft import chosen_nll


def pair_mask(scores: CandidateScores) -> torch.Tensor:
    """[B, K-1] bool: pair (0, j+1) exists (its rejected is present)."""
    return scores.present[:, 1:]


def chosen_pair_means(scores: CandidateScores) -> torch.Tensor:
    """[B, K-1] candidate 0's mean log-prob as compared with each rejected: over `chosen_span_*`
    when given (--rejected_scope diverging), else over the whole candidate 0."""
    if scores.chosen_span_logps is None:
        return candidate_means(scores)[:, :1].expand(-1, scores.logps.shape[1] - 1)
    # an absent pair's span may be empty or hold anything: it reads as the stand-in, as absent slots do
    span_sums = present_values(scores.chosen_span_logps, pair_mask(scores))
    return span_sums / scores.chosen_span_tokens.clamp(min=1).float()


def sigmoid_pair_loss(logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-pair Bradley-Terry loss -log sigmoid(logits), with conservative label smoothing (the
    chance that the pair's label is flipped; cDPO, https://ericmitchell.ai/cdpo.pdf) as TRL's CPO
    `sigmoid`/`simpo` losses and TRL < 1.0's DPO `sigmoid` apply it. Shape: any -> the same."""
    return -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing


def pair_metrics(
    chosen_rewards: torch.Tensor,  # [B, K-1] or [B, 1] reward of the chosen in each pair
    rejected_rewards: torch.Tensor,  # [B, K-1]
    chosen_logps: torch.Tensor,  # [B, K-1] or [B, 1] the chosen's score as TRL logs it (sum or mean)
    rejected_logps: torch.Tensor,  # [B, K-1]
    mask: torch.Tensor,  # [B, K-1] present pairs
) -> dict[str, torch.Tensor]:
    """TRL's pairwise metrics, averaged over present pairs (detached)."""
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    return {
        "rewards/chosen": masked_mean(chosen_rewards, mask),
        "rewards/rejected": masked_mean(rejected_rewards, mask),
        "rewards/accuracies": masked_mean((chosen_rewards > rejected_rewards).float(), mask),
        "rewards/margins": masked_mean(chosen_rewards - rejected_rewards, mask),
        "logps/chosen": masked_mean(chosen_logps.detach(), mask),
        "logps/rejected": masked_mean(rejected_logps.detach(), mask),
    }


def label_smoothing_field() -> Any:
    """The `label_smoothing` weight of the sigmoid pair losses (DPO, SimPO)."""
    help_text = "Chance a pair's preference is flipped (cDPO; TRL's `label_smoothing`), in [0, 0.5); 0: none."
    return field(default=0.0, metadata={"help": help_text})


def require_label_smoothing(objective: str, label_smoothing: float) -> None:
    """Refuse a flip probability outside [0, 0.5) (at 0.5 the pair says nothing)."""
    require(0 <= label_smoothing < 0.5, f"{objective}: label_smoothing must be in [0, 0.5), got {label_smoothing}")


def pair_output(
    scores: CandidateScores,
    pair_losses: torch.Tensor,  # [B, K-1] each pair's loss
    rewards: tuple[torch.Tensor, torch.Tensor],  # chosen [B, K-1] or [B, 1], rejected [B, K-1]
    logps: tuple[torch.Tensor, torch.Tensor],  # the scores TRL logs as logps/*, same shapes
    *,
    pair_weight: float = 1.0,
    nll_weight: float = 0.0,
    **metrics: torch.Tensor,  # the objective's own metrics (detached scalars)
) -> ObjectiveOutput:
    """pair_weight * (mean pair loss over present pairs) + nll_weight * NLL of the chosen, with TRL's metrics."""
    mask = pair_mask(scores)
    nll = chosen_nll(scores)
    loss = pair_weight * masked_mean(pair_losses, mask) + nll_weight * nll
    return ObjectiveOutput(loss, {"nll_loss": nll.detach(), **metrics, **pair_metrics(*rewards, *logps, mask)})
