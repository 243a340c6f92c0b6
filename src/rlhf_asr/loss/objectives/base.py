"""The objectives' plug-in point: what every objective reads, returns and declares.

One encoder pass scores K candidate transcripts per audio. Candidate 0 is the chosen (the
reference transcript); candidates 1..K-1 are rejected transcripts or other hypotheses of a K-best.
An objective sees only per-candidate sums of label log-probs and token counts (`CandidateScores`),
so the engine that fills them and the maths that reads them stay apart: any objective runs on any
engine, and a new objective is one module.

Modelled on torchtune's RLHF losses, each of which declares whether it needs a reference model
(https://github.com/pytorch/torchtune/blob/main/torchtune/rlhf/loss/dpo.py), and on TRL's
`loss_type` switch (https://github.com/huggingface/trl/blob/main/trl/trainer/dpo_trainer.py).

Absent candidates: a K-best is ragged, so rows are padded to K with slots whose token count is 0.
Every objective reads a candidate through `present_values` (or a `where` of its own), which puts a
finite stand-in in absent slots (whatever they held, NaN included) before any arithmetic, and
leaves them out of every mean: absent slots get neither loss, nor NaN, nor gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from rlhf_asr.errors import UserInputError

# What an absent slot reads as: a log-prob (P = 1/e) where every function the objectives apply
# (log-odds, log-sigmoid, softmax) is finite with a finite gradient. Never reaches a loss or metric.
ABSENT_FILL = -1.0


@dataclass(frozen=True)
class CandidateScores:
    """Per-candidate scores of a batch of B audios with K candidate transcripts each.

    Candidate 0 must be present in every row (tokens >= 1); a slot with `tokens == 0` is absent.
    """

    logps: torch.Tensor  # [B, K] summed label log-probs of each candidate under the trained model
    tokens: torch.Tensor  # [B, K] scored tokens of each candidate; 0 = absent slot
    reference_logps: torch.Tensor | None = None  # [B, K] the same sums under the frozen starting model (DPO)
    word_errors: torch.Tensor | None = None  # [B, K] word errors of each candidate against candidate 0 (MWER)
    # Candidate 0's sum and count over the span compared with candidate j+1 (--rejected_scope
    # diverging: from their first differing token); None: the whole candidate 0. Per pair, because
    # each rejected diverges from the chosen at its own token.
    chosen_span_logps: torch.Tensor | None = None  # [B, K-1]
    chosen_span_tokens: torch.Tensor | None = None  # [B, K-1]

    def __post_init__(self) -> None:
        if self.logps.dim() != 2 or self.logps.shape[1] < 1:
            raise ValueError(f"CandidateScores.logps must be [B, K] with K >= 1, got {tuple(self.logps.shape)}")
        shape = self.logps.shape
        span_shape = (shape[0], shape[1] - 1)
        expected = {"tokens": shape, "reference_logps": shape, "word_errors": shape}
        expected |= {"chosen_span_logps": span_shape, "chosen_span_tokens": span_shape}
        for name, want in expected.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != tuple(want):
                raise ValueError(f"CandidateScores.{name} must be {tuple(want)}, got {tuple(value.shape)}")
        if (self.chosen_span_logps is None) != (self.chosen_span_tokens is None):
            raise ValueError("CandidateScores.chosen_span_logps and chosen_span_tokens come together")
        # One device sync: without its chosen a row has no NLL and no pairs, and 0/0 would be NaN.
        if bool((self.tokens[:, 0] < 1).any()):
            raise ValueError("CandidateScores: candidate 0 (the chosen) must be present (tokens >= 1) in every row")

    @classmethod
    def pair(
        cls,
        chosen_logps: torch.Tensor,  # [B]
        chosen_tokens: torch.Tensor,  # [B]
        rejected_logps: torch.Tensor,  # [B]
        rejected_tokens: torch.Tensor,  # [B]
        **extra: torch.Tensor | None,  # [B, 2] reference_logps / word_errors, [B] chosen_span_*
    ) -> CandidateScores:
        """K = 2 scores from the pairwise engine's chosen/rejected tensors (model/engine.py's outputs)."""
        for name in ("chosen_span_logps", "chosen_span_tokens"):
            if extra.get(name) is not None:
                extra[name] = extra[name].unsqueeze(1)
        logps = torch.stack([chosen_logps, rejected_logps], dim=1)
        return cls(logps, torch.stack([chosen_tokens, rejected_tokens], dim=1), **extra)

    @property
    def present(self) -> torch.Tensor:
        """[B, K] bool: which slots hold a candidate."""
        return self.tokens > 0


def present_values(values: torch.Tensor, present: torch.Tensor, fill: float = ABSENT_FILL) -> torch.Tensor:
    """[B, K] float32 `values` with `fill` in absent slots: `where` sends them a zero gradient."""
    return torch.where(present, values.float(), fill)


def candidate_means(scores: CandidateScores) -> torch.Tensor:
    """[B, K] mean per-token log-prob of each candidate (length-normalised, as ORPO and SimPO compare)."""
    return present_values(scores.logps, scores.present) / scores.tokens.clamp(min=1).float()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` (broadcast together); 0 when nothing is selected."""
    values, mask = torch.broadcast_tensors(values, mask)
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)


def require(condition: bool, message: str) -> None:
    """Refuse an objective's weight with one clear line."""
    if not condition:
        raise UserInputError(message)


@dataclass(frozen=True)
class ObjectiveOutput:
    """What an objective returns: the loss to minimise and the metrics to log."""

    loss: torch.Tensor  # [] differentiable
    # name -> [] detached tensor (not float, so a trainer can gather across ranks before syncing);
    # TRL's names where they mean the same thing: nll_loss, rewards/*, logps/*, log_odds_*
    metrics: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """Base of every objective: its weights are the dataclass fields (with `help` metadata), the
    maths a pure function in its module, and `compute` a thin call of it.

    A subclass sets the class attributes below, checks its weights in `__post_init__` (`require`),
    implements `compute`, and joins `OBJECTIVES` (registry.py).
    """

    name: ClassVar[str]
    needs_reference: ClassVar[bool] = False  # reads `reference_logps` (a frozen starting model's scores)
    needs_word_errors: ClassVar[bool] = False  # reads `word_errors`
    min_candidates: ClassVar[int] = 2  # smallest K it accepts: 1 for SFT, 2 for pairwise and MWER
    uses_chosen_span: ClassVar[bool] = True  # False: refuses `chosen_span_*` (it compares whole candidates)
    reads_rejected: ClassVar[bool] = True  # False: reads candidate 0 alone (a trainer need not score the others)

    def __call__(self, scores: CandidateScores) -> ObjectiveOutput:
        k = scores.logps.shape[1]
        if k < self.min_candidates:
            raise ValueError(f"objective {self.name} needs K >= {self.min_candidates} candidates per audio, got {k}")
        if self.needs_reference and scores.reference_logps is None:
            raise ValueError(f"objective {self.name} needs reference_logps (the starting model's scores)")
        if self.needs_word_errors and scores.word_errors is None:
            raise ValueError(f"objective {self.name} needs word_errors of each candidate")
        if not self.uses_chosen_span and scores.chosen_span_logps is not None:
            raise ValueError(f"objective {self.name} compares whole candidates: chosen_span_* is not supported")
        return self.compute(scores)

    def compute(self, scores: CandidateScores) -> ObjectiveOutput:
        raise NotImplementedError

    @classmethod
    def weight_help(cls) -> dict[str, str]:
        """Each weight's name -> its help text (for the CLI)."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}
