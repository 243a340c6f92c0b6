"""The K-best step of `rlhf-asr bench --candidates`: K candidates per clip scored by one objective.

The loss is training's: the engine's `forward_candidates` (through its forward, as a trainer
reaches it), `trainer.batches.candidate_scores`, then the objective. Which engine scores the K
candidates is the mode's: `packed` packs them as K blocks of one decoder pass after one encoder
pass; `naive` runs the whole model once per candidate (the encoder K times), as an implementation
that scores each sequence separately would.
"""

from __future__ import annotations

import torch


def default_objective(k: int) -> str:
    """ORPO for a pair; MWER for a longer list (it reads every candidate)."""
    return "orpo" if k == 2 else "mwer"


def candidate_loss(engine, objective_name: str):
    """A function of a `batches.candidate_batch` returning the objective's loss, reference log-probs as a tensor."""
    from rlhf_asr.loss.objectives import build_objective
    from rlhf_asr.trainer.batches import candidate_scores

    objective = build_objective(objective_name)

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = engine(
            input_features=batch["input_features"],
            candidate_input_ids=batch["candidate_input_ids"],
            candidate_labels=batch["candidate_labels"],
        )
        reference = batch["reference_logps"] if objective.needs_reference else None
        errors = batch["candidate_word_errors"] if objective.needs_word_errors else None
        return objective(candidate_scores(out, reference, errors)).loss

    return loss
