"""DPO: Direct Preference Optimization, against a frozen reference model.

Rafailov, Sharma, Mitchell, Ermon, Manning, Finn (2023), "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model", https://arxiv.org/abs/2305.18290. Reference
implementation: TRL's `DPOTrainer` with `loss_type="sigmoid"`
(https://github.com/huggingface/trl/blob/main/trl/trainer/dpo_trainer.py, `_compute_loss`).

    logits = beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))   on summed log-probs
    loss   = -log sigmoid(logits) * (1 - eps) - log sigmoid(-logits) * eps  [+ rpo_alpha * NLL(c)]
    reward = beta * (log pi - log ref), detached

`eps` is conservative DPO's label smoothing (cDPO, https://ericmitchell.ai/cdpo.pdf), as TRL < 1.0's
`sigmoid` loss applied it; TRL 1.x's `sigmoid` has none (eps = 0 here is that loss). `rpo_alpha`
adds the chosen's NLL (RPO: Pang et al. 2024, https://arxiv.org/abs/2404.19733), as TRL 1.x's
`loss_type=["sigmoid", "sft"]` with `loss_weights=[1, rpo_alpha]` does.

Needs `reference_logps`: each candidate's sum under the starting model, computed once without
gradient (or precomputed), on the same tokens. Sums, not means, so the shared prefix of two
transcripts cancels in the logits: DPO compares whole candidates and refuses `chosen_span_*`
(so an engine must give it whole-candidate sums for the rejected too, whatever --rejected_scope).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlhf_asr.loss.objectives.base import (
    CandidateScores,
    Objective,
    ObjectiveOutput,
    present_values,
    require,
)
from rlhf_asr.loss.objectives.pairwise import (
    label_smoothing_field,
    pair_output,
    require_label_smoothing,
    sigmoid_pair_loss,
)


def dpo_logits(
    policy_logps: torch.Tensor, reference_logps: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's per-pair logits and per-candidate implicit rewards.

    Args:
        policy_logps: [B, K] summed label log-probs under the trained model (candidate 0 = chosen).
        reference_logps: [B, K] the same under the frozen reference model.
        beta: KL strength; typical 0.1 (0.01-0.5); larger keeps closer to the reference.
    Returns:
        logits [B, K-1] for the pairs (0, j), j = 1..K-1; rewards [B, K] = beta * log ratio.
    """
    log_ratios = policy_logps - reference_logps  # [B, K]
    logits = beta * (log_ratios[:, :1] - log_ratios[:, 1:])  # [B, K-1]
    return logits, beta * log_ratios


@dataclass(frozen=True)
class DPO(Objective):
    """DPO (sigmoid loss) over the pairs (chosen, each present rejected)."""

    name = "dpo"
    needs_reference = True
    uses_chosen_span = False

    beta: float = field(
        default=0.1,
        metadata={
            "help": "KL strength (TRL's DPOConfig `beta`); typical 0.1 (0.01-0.5): larger stays nearer the "
            "starting model."
        },
    )
    label_smoothing: float = label_smoothing_field()
    rpo_alpha: float = field(
        default=0.0,
        metadata={"help": "Weight of the chosen's NLL added (RPO; TRL < 1.0's `rpo_alpha`, 1.0 in the RPO paper)."},
    )

    def __post_init__(self) -> None:
        require(self.beta > 0, f"dpo: beta must be > 0, got {self.beta}")
        require_label_smoothing(self.name, self.label_smoothing)
        require(self.rpo_alpha >= 0, f"dpo: rpo_alpha must be >= 0, got {self.rpo_alpha}")

    def compute(self, scores: CandidateScores) -> ObjectiveOutput:
        policy = present_values(scores.logps, scores.present)  # [B, K]
        reference = present_values(scores.reference_logps, scores.present)  # [B, K]
        logits, rewards = dpo_logits(policy, reference, self.beta)
        pair_losses = sigmoid_pair_loss(logits, self.label_smoothing)  # [B, K-1]
        # logps: summed log-probs, as TRL's DPO logs them
        rewards, policy = (rewards[:, :1], rewards[:, 1:]), (policy[:, :1], policy[:, 1:])
        return pair_output(scores, pair_losses, rewards, policy, nll_weight=self.rpo_alpha)
