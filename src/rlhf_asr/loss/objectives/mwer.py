"""MWER: minimum word error rate over a K-best list, plus a little cross-entropy on the reference.

Prabhavalkar, Sainath, Wu, Nguyen, Chen, Chiu, Kannan (2018), "Minimum Word Error Rate Training for
Attention-based Sequence-to-Sequence Models", ICASSP 2018, https://arxiv.org/abs/1712.01818 (the
N-best approximation, section 2.2). No TRL counterpart; checked against numbers worked by hand
(tests/loss/test_objective_mwer.py).

Per audio, over the candidates in its list (absent slots excluded):

    P(y_i)  = exp(log pi(y_i)) / sum_j exp(log pi(y_j))     (summed log-probs, renormalised)
    L_werr  = sum_i P(y_i) * (W_i - mean_j W_j)             (mean subtracted: lower variance)
    L       = mean over audios of L_werr  +  ce_weight * NLL(candidate 0)

W_i are the word errors of candidate i against the reference, candidate 0 (W_0 = 0). The gradient
of L_werr with respect to log pi(y_i) is P(y_i) * (W_i - sum_j P(y_j) W_j): probability moves to
the candidates with fewer errors than the list's expected errors.

The list: by default every present candidate, the reference (candidate 0) included, so the loss
also raises the reference against the hypotheses. If a hypothesis equals the reference, the data
side should leave it out (else the reference counts twice), or set `reference_in_list=False`: the
paper's form, the list is candidates 1..K-1 only and the reference enters through the NLL alone.
An audio with fewer than two candidates in its list contributes 0 and is left out of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlhf_asr.loss.objectives.base import (
    CandidateScores,
    Objective,
    ObjectiveOutput,
    masked_mean,
    present_values,
    require,
)
from rlhf_asr.loss.objectives.sft import chosen_nll


def mwer_terms(
    logps: torch.Tensor, word_errors: torch.Tensor, in_list: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-audio MWER risk over the K-best.

    Args:
        logps: [B, K] summed label log-probs of each candidate.
        word_errors: [B, K] word errors of each candidate against the reference (>= 0, float).
        in_list: [B, K] bool, which candidates the list holds (absent slots False).
    Returns:
        risk [B] sum_i P_i (W_i - mean W), expected [B] sum_i P_i W_i, mean [B] mean W; 0 where
        the list is empty.
    """
    # Out-of-list slots score the lowest float, not -inf: exp() makes them 0 probability, and a row
    # with an empty list stays finite (its uniform softmax is masked out below).
    scores = torch.where(in_list, logps.float(), torch.finfo(torch.float32).min)  # [B, K]
    probs = torch.softmax(scores, dim=1)  # [B, K]
    errors = present_values(word_errors, in_list, fill=0.0)  # [B, K]
    mean_errors = errors.sum(1) / in_list.sum(1).clamp(min=1)  # [B]
    expected = torch.where(in_list, probs * errors, 0.0).sum(1)  # [B]
    risk = torch.where(in_list, probs * (errors - mean_errors[:, None]), 0.0).sum(1)  # [B]
    return risk, expected, mean_errors


@dataclass(frozen=True)
class MWER(Objective):
    """Expected word errors over the K-best (mean subtracted) + ce_weight * NLL of the reference."""

    name = "mwer"
    needs_word_errors = True
    uses_chosen_span = False

    ce_weight: float = field(
        default=0.01,
        metadata={
            "help": "Weight of the reference's cross-entropy (the paper's lambda: 0.01 with N = 4 "
            "hypotheses; typical 0.01-0.1; without it training is unstable)."
        },
    )
    reference_in_list: bool = field(
        default=True,
        metadata={
            "help": "The reference (candidate 0) is one of the list's candidates (False: the list is the "
            "hypotheses 1..K-1 alone, as in the paper)."
        },
    )

    def __post_init__(self) -> None:
        require(self.ce_weight >= 0, f"mwer: ce_weight must be >= 0, got {self.ce_weight}")

    def compute(self, scores: CandidateScores) -> ObjectiveOutput:
        in_list = scores.present  # [B, K]
        if not self.reference_in_list:
            in_list = in_list & (torch.arange(in_list.shape[1], device=in_list.device) > 0)
        risk, expected, mean_errors = mwer_terms(scores.logps, scores.word_errors, in_list)
        rows = in_list.sum(1) >= 2  # [B] lists with something to choose between
        mwer = masked_mean(risk, rows)
        nll = chosen_nll(scores)
        metrics = {
            "nll_loss": nll.detach(),
            "mwer/loss": mwer.detach(),
            "mwer/expected_errors": masked_mean(expected, rows).detach(),
            "mwer/mean_errors": masked_mean(mean_errors, rows).detach(),  # expected below mean: mass on better ones
        }
        return ObjectiveOutput(loss=mwer + self.ce_weight * nll, metrics=metrics)
