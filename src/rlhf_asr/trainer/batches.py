"""What a training run's batches hold, from its data and its objective: pairs, K-best lists, or the chosen alone.

- Preference pairs and an objective that compares them (ORPO, DPO, SimPO): `PreferenceCollator`
  and the pair forward (chosen and rejected blocks; `--rejected_scope diverging` adds the chosen's span).
- K-best rows (make-pairs --nbest) in either split: `CandidateCollator` and `forward_candidates`
  (the reference and its hypotheses as K blocks of one decoder pass), with the word errors for
  MWER. The pairwise objectives take the reference as the chosen and each hypothesis with word
  errors as one rejected (data/kbest.py: `keep_correct`); MWER takes every hypothesis.
- An objective that reads the chosen alone (SFT, `reads_rejected` False), either data:
  `CandidateCollator(chosen_only=True)`, one block per audio: the rejected are never decoded.

Refused in one line, after the data is read and before the model loads: MWER on preference pairs
(it needs each hypothesis's word errors: make-pairs --nbest writes them), and `--rejected_scope
diverging` on K-best rows (a span per pair is the pair collator's).
"""

from __future__ import annotations

import torch

from rlhf_asr.data.collator import CandidateCollator, PreferenceCollator
from rlhf_asr.data.kbest import KBestDataset
from rlhf_asr.errors import UserInputError
from rlhf_asr.loss.objectives import CandidateScores, Objective


def is_kbest(dataset) -> bool:
    return isinstance(dataset, KBestDataset)


def check_run_data(objective: Objective, rejected_scope: str, sets: dict[str, tuple[str, object]]) -> None:
    """`sets`: option -> (its path, its dataset or None); refuses what the objective cannot train on."""
    for option, (path, dataset) in sets.items():
        if dataset is None:
            continue
        if objective.needs_word_errors and not is_kbest(dataset):
            raise UserInputError(
                f"--loss {objective.name} needs K-best rows (a reference and hypotheses with their word errors), "
                f"but {option} {path} holds preference pairs: write K-best rows with `rlhf-asr make-pairs --nbest 4`"
            )
        if is_kbest(dataset) and rejected_scope == "diverging":
            raise UserInputError(
                f"--rejected_scope diverging compares a pair from its first differing token: not with the K-best "
                f"rows of {option} {path}; use --rejected_scope all"
            )


def uses_candidates(objective: Objective, datasets) -> bool:
    """Candidate batches (CandidateCollator): with K-best data in any split, or a chosen-only objective."""
    return not objective.reads_rejected or any(is_kbest(dataset) for dataset in datasets if dataset is not None)


def run_collator(objective: Objective, candidates: bool, pad_token_id: int, completion_only_loss: bool, scope: str):
    """The collator of a run's batches (the module's docstring says which)."""
    if not candidates:
        return PreferenceCollator(pad_token_id, completion_only_loss=completion_only_loss, rejected_scope=scope)
    return CandidateCollator(
        pad_token_id,
        completion_only_loss=completion_only_loss,
        chosen_only=not objective.reads_rejected,
        min_candidates=objective.min_candidates,
    )


def candidate_scores(
    out: dict, reference: torch.Tensor | None = None, word_errors: torch.Tensor | None = None
) -> CandidateScores:
    """`CandidateScores` of a candidate batch from the engine's outputs ([B, K] `candidate_logps`,
    `candidate_tokens`); `reference` [B, K] the starting model's sums (DPO), `word_errors` [B, K] (MWER)."""
    errors = None if word_errors is None else word_errors.float()
    return CandidateScores(
        out["candidate_logps"], out["candidate_tokens"], reference_logps=reference, word_errors=errors
    )
