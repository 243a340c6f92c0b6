"""SFT: supervised fine-tuning on the chosen transcript (candidate 0) alone.

The token-mean negative log-likelihood of the chosen over the batch: exactly ORPO's supervised
term (`nll_loss`), and the NLL that DPO's `rpo_alpha`, SimPO's `cpo_alpha` and MWER's `ce_weight`
add. Reference implementation: TRL's `SFTTrainer` loss, and the `nll_loss` of TRL's ORPO
(https://github.com/huggingface/trl/blob/main/trl/experimental/orpo/orpo_trainer.py).

Ignores candidates 1..K-1 (`reads_rejected` False: the trainer scores the chosen alone), so it runs
on pair and K-best batches alike (K >= 1). The baseline every preference objective is measured
against: the same data, no rejected transcripts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf_asr.loss.objectives.base import CandidateScores, Objective, ObjectiveOutput


def token_mean_nll(chosen_logps: torch.Tensor, chosen_tokens: torch.Tensor) -> torch.Tensor:
    """[] NLL of the chosen averaged over all its tokens in the batch, as Whisper's own loss, TRL's
    encoder-decoder NLL and `orpo_loss` average (a long transcript weighs more than a short one).

    Args:
        chosen_logps: [B] summed label log-probs of each chosen transcript (<= 0).
        chosen_tokens: [B] its scored tokens (>= 1).
    """
    return -chosen_logps.float().sum() / chosen_tokens.float().sum()


def chosen_nll(scores: CandidateScores) -> torch.Tensor:
    """[] `token_mean_nll` of candidate 0."""
    return token_mean_nll(scores.logps[:, 0], scores.tokens[:, 0])


@dataclass(frozen=True)
class SFT(Objective):
    """Token-mean NLL of candidate 0; no weights."""

    name = "sft"
    min_candidates = 1
    reads_rejected = False

    def compute(self, scores: CandidateScores) -> ObjectiveOutput:
        nll = chosen_nll(scores)
        return ObjectiveOutput(loss=nll, metrics={"nll_loss": nll.detach()})
