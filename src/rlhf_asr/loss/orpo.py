"""ORPO: Monolithic Preference Optimization without Reference Model.

Hong, Lee, Thorne (2024), https://arxiv.org/abs/2403.07691

Intuition: keep the supervised loss on the preferred transcript, and add a term that raises the
odds of the preferred transcript relative to the odds of the rejected one. No reference model.

    odds(y|x) = P(y|x) / (1 - P(y|x)),  P = exp(mean per-token log-likelihood)
    L = NLL(chosen) + alpha * L_OR,     L_OR = -log sigmoid(log odds(chosen) - log odds(rejected))

`alpha` is the paper's lambda (TRL calls it beta). `alpha = 0` is plain supervised fine-tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LOG_HALF = -math.log(2.0)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler, 2012).

    Near 0, `1 - exp(x)` cancels: use `log(-expm1(x))`. Far below 0, `exp(x)` underflows in the
    subtraction: use `log1p(-exp(x))`. A mean log-prob of exactly 0 (P = 1) gives -inf odds
    denominators, so it is clamped to the smallest normal float below 0 (its gradient, about
    1/x, stays finite there in every float type; subnormals would overflow it in fp16).

    `torch.where` differentiates both branches and multiplies the one not taken by 0, and
    0 * inf is NaN: near 0 `exp(x)` rounds to 1 (x > -2^-25 in fp32, -2^-12 in fp16) and the
    far branch's `log1p(-1)` is -inf. So each branch is fed only inputs from its own side, the
    other side replaced by -log 2, where both are finite.
    """
    x = x.clamp(max=-torch.finfo(x.dtype).tiny)
    near = x > _LOG_HALF
    near_x = torch.where(near, x, _LOG_HALF)
    far_x = torch.where(near, _LOG_HALF, x)
    return torch.where(near, torch.log(-torch.expm1(near_x)), torch.log1p(-torch.exp(far_x)))


def log_odds(mean_logps: torch.Tensor) -> torch.Tensor:
    """log(P / (1 - P)) from log P. Shape: any; returns the same shape."""
    return mean_logps - log1mexp(mean_logps)


@dataclass
class ORPOLossOutput:
    """Per-batch loss and the metrics TRL logs for ORPO (all scalars except where noted)."""

    loss: torch.Tensor  # NLL + alpha * L_OR, differentiable
    nll_loss: torch.Tensor  # token-level NLL of the chosen transcripts
    or_loss: torch.Tensor  # mean of -log sigmoid(log odds ratio)
    log_odds_ratio: torch.Tensor  # mean log sigmoid(log odds ratio), as TRL logs it
    log_odds_chosen: torch.Tensor  # mean log odds ratio, as TRL logs it
    chosen_rewards: torch.Tensor  # [B] alpha * mean log-prob (detached)
    rejected_rewards: torch.Tensor  # [B]


def orpo_loss(
    chosen_logps_sum: torch.Tensor,
    chosen_tokens: torch.Tensor,
    rejected_logps_sum: torch.Tensor,
    rejected_tokens: torch.Tensor,
    alpha: float = 1.0,
    *,
    chosen_odds_logps_sum: torch.Tensor | None = None,
    chosen_odds_tokens: torch.Tensor | None = None,
) -> ORPOLossOutput:
    """ORPO loss from per-sequence sums of label log-probs.

    Args:
        chosen_logps_sum: [B] sum of log p(token) over the scored tokens of each chosen transcript.
        chosen_tokens: [B] number of scored tokens of each chosen transcript (>= 1).
        rejected_logps_sum: [B] same for the rejected transcript.
        rejected_tokens: [B] same for the rejected transcript.
        alpha: weight of the odds-ratio term.
        chosen_odds_logps_sum, chosen_odds_tokens: [B] the chosen's sum and count over the span the
            odds ratio compares (`--rejected_scope diverging`: from the first differing token, as
            the rejected's); None: the whole chosen, as above.

    The NLL is averaged over all chosen tokens of the batch (as Whisper's own loss and TRL's
    encoder-decoder NLL do), always the whole chosen transcript: ORPO's supervised term teaches
    the preferred output, shared prefix included. The odds ratio uses the per-sequence mean
    log-prob (length-normalised, as in the paper) over the odds span.
    """
    odds_sum = chosen_logps_sum if chosen_odds_logps_sum is None else chosen_odds_logps_sum
    odds_tokens = chosen_tokens if chosen_odds_tokens is None else chosen_odds_tokens
    chosen_mean = odds_sum.float() / odds_tokens.float()
    rejected_mean = rejected_logps_sum.float() / rejected_tokens.float()
    nll = -chosen_logps_sum.float().sum() / chosen_tokens.float().sum()

    ratio = log_odds(chosen_mean) - log_odds(rejected_mean)
    log_sigmoid_ratio = F.logsigmoid(ratio)
    or_loss = -log_sigmoid_ratio.mean()
    return ORPOLossOutput(
        loss=nll + alpha * or_loss,
        nll_loss=nll.detach(),
        or_loss=or_loss.detach(),
        log_odds_ratio=log_sigmoid_ratio.mean().detach(),
        log_odds_chosen=ratio.mean().detach(),
        chosen_rewards=(alpha * chosen_mean).detach(),
        rejected_rewards=(alpha * rejected_mean).detach(),
    )


def preference_loss(out: dict[str, torch.Tensor], alpha: float = 1.0) -> ORPOLossOutput:
    """`orpo_loss` from the preference engine's outputs (model/engine.py): the NLL from the whole
    chosen (`chosen_logps`), the odds ratio from `chosen_odds_logps` against `rejected_logps`."""
    return orpo_loss(
        out["chosen_logps"],
        out["chosen_tokens"],
        out["rejected_logps"],
        out["rejected_tokens"],
        alpha,
        chosen_odds_logps_sum=out.get("chosen_odds_logps"),
        chosen_odds_tokens=out.get("chosen_odds_tokens"),
    )
