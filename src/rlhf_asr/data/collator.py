"""Batches of preference pairs (one audio, two label sequences) and of K candidates (one audio, K:
a K-best row's reference and hypotheses, with their word errors).

For each transcript the full token sequence s is split the way Whisper expects:
decoder input = s[:-1], labels = s[1:], so the logits at position t score labels[t].
Labels are -100 where a position is not scored: padding, and the task prompt when the prompt loss
is disabled.

With `rejected_scope="diverging"` the odds ratio starts at the first token where the two
transcripts differ, in *both* transcripts: it compares mean per-token log-probs, and a chosen
mean over the easy shared prefix plus its suffix against a rejected mean over the suffix alone
would compare unlike quantities. The NLL term still covers the whole chosen (ORPO's supervised
loss on the preferred output), so the batch then carries two chosen masks over the same decoder
inputs: `chosen_labels` (the NLL, as with scope "all") and `chosen_odds_labels` (the odds ratio),
both scored from one decoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rlhf_asr.data.tokens import EncodedTranscript
from rlhf_asr.loss.logps import IGNORE_INDEX
from rlhf_asr.option_checks import older_names


def first_divergence(chosen: tuple[int, ...], rejected: tuple[int, ...]) -> int:
    """Index of the first token where the two sequences differ (length of the common prefix)."""
    limit = min(len(chosen), len(rejected))
    for i in range(limit):
        if chosen[i] != rejected[i]:
            return i
    return limit


def pad_decoder_sequences(
    sequences: list[tuple[int, ...]], scored_from: list[int], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and labels, right-padded, for full sequences.

    Args:
        sequences: full token sequences (with <|startoftranscript|> and <|endoftext|>).
        scored_from: per sequence, index into the full sequence of the first token to score.
        pad_id: id used for padded decoder inputs (never scored).
    Returns:
        input_ids [B, L] and labels [B, L], L = longest sequence - 1.
    """
    length = max(len(s) for s in sequences) - 1
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), length), IGNORE_INDEX, dtype=torch.long)
    for row, (seq, start) in enumerate(zip(sequences, scored_from)):
        seq_t = torch.tensor(seq, dtype=torch.long)
        input_ids[row, : len(seq) - 1] = seq_t[:-1]
        labels[row, : len(seq) - 1] = seq_t[1:]
        # label t is token t+1 of the full sequence: tokens before `start` are not scored
        labels[row, : max(start - 1, 0)] = IGNORE_INDEX
    return input_ids, labels


def scored_from(transcripts: list[EncodedTranscript], completion_only_loss: bool) -> list[int]:
    """Per transcript, the index of its first scored token: after the prompt (`completion_only_loss`), or else 1.

    1 skips only <|startoftranscript|>, which is never predicted.
    """
    return [t.prefix_len if completion_only_loss else 1 for t in transcripts]


@older_names(disable_prompt_loss="completion_only_loss")
@dataclass
class PreferenceCollator:
    """Turns dataset items into a batch for the preference engine.

    Items: `input_features` [n_mels, frames], `chosen` / `rejected` EncodedTranscript, `index`.
    Batch: `input_features`, `chosen_input_ids`, `chosen_labels`, `rejected_input_ids`,
    `rejected_labels`, `example_index`, and with scope "diverging" `chosen_odds_labels` (the
    chosen's odds span: `chosen_labels` with the shared prefix also -100).
    """

    pad_token_id: int
    completion_only_loss: bool = False
    rejected_scope: str = "all"  # "all" | "diverging"

    def __post_init__(self):
        if self.rejected_scope not in {"all", "diverging"}:
            raise ValueError(f"rejected_scope must be 'all' or 'diverging', not {self.rejected_scope!r}")

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        chosen = [item["chosen"] for item in items]
        rejected = [item["rejected"] for item in items]
        chosen_from = scored_from(chosen, self.completion_only_loss)
        rejected_from = scored_from(rejected, self.completion_only_loss)
        odds_from = chosen_from
        if self.rejected_scope == "diverging":
            diverge = [first_divergence(c.ids, r.ids) for c, r in zip(chosen, rejected)]
            # at least <|endoftext|> stays scored, so no transcript has zero tokens
            odds_from = [min(max(s, d), len(c.ids) - 1) for s, d, c in zip(chosen_from, diverge, chosen)]
            rejected_from = [min(max(s, d), len(r.ids) - 1) for s, d, r in zip(rejected_from, diverge, rejected)]
        chosen_ids, chosen_labels = pad_decoder_sequences([c.ids for c in chosen], chosen_from, self.pad_token_id)
        rejected_ids, rejected_labels = pad_decoder_sequences(
            [r.ids for r in rejected], rejected_from, self.pad_token_id
        )
        batch = {
            "input_features": torch.from_numpy(np.stack([item["input_features"] for item in items])),
            "chosen_input_ids": chosen_ids,
            "chosen_labels": chosen_labels,
            "rejected_input_ids": rejected_ids,
            "rejected_labels": rejected_labels,
            "example_index": torch.tensor([item["index"] for item in items], dtype=torch.long),
        }
        if self.rejected_scope == "diverging":
            # odds_from >= chosen_from: the odds span is within the NLL's, which the engine relies on
            batch["chosen_odds_labels"] = pad_decoder_sequences([c.ids for c in chosen], odds_from, self.pad_token_id)[
                1
            ]
        return batch


WORD_ERRORS_KEY = "candidate_word_errors"  # a candidate batch's [B, K] word errors, when its items have them


def item_candidates(item: dict) -> list[EncodedTranscript]:
    """An item's candidates: a K-best item's `candidates`, a pair's chosen then rejected."""
    return item["candidates"] if "candidates" in item else [item["chosen"], item["rejected"]]


@older_names(disable_prompt_loss="completion_only_loss")
@dataclass
class CandidateCollator:
    """Turns dataset items with K candidate transcripts each into a batch for `forward_candidates`.

    Items: `input_features` [n_mels, frames], `index`, and `candidates`: a list of
    EncodedTranscript, not necessarily as many per item (a K-best cut short), or a pair's `chosen`
    and `rejected` (K = 2). Every item is padded to the batch's K with absent slots: pad ids,
    labels -100 throughout, which the engine scores as 0 tokens and 0 log-prob. Each candidate is
    scored as PreferenceCollator scores a transcript: from its first text token with
    `completion_only_loss`, else from 1. `chosen_only`: candidate 0 alone (K = 1), for an objective
    that reads nothing else (SFT): the other candidates are never decoded. `min_candidates`: K is
    padded up to it with absent slots (a pairwise objective needs K >= 2 even where no row of the
    batch has a rejected: its rows then train their NLL alone).
    Batch: `input_features` [B, n_mels, frames], `candidate_input_ids` [B, K, L],
    `candidate_labels` [B, K, L] (L = the longest sequence - 1), `example_index` [B]: the
    keyword arguments of `forward_candidates`; and, when the items carry `word_errors` (K-best
    items) and not `chosen_only`, WORD_ERRORS_KEY [B, K] long (0 in absent slots). Which slots hold a
    candidate needs no tensor of its own: a present candidate always scores its <|endoftext|>, so
    the engine's `present` (tokens > 0) says it.
    """

    pad_token_id: int
    completion_only_loss: bool = False
    chosen_only: bool = False
    min_candidates: int = 1  # K is at least this (absent slots added): an objective's `min_candidates`

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        per_item = [item_candidates(item)[: 1 if self.chosen_only else None] for item in items]
        slots = [(row, k) for row, candidates in enumerate(per_item) for k in range(len(candidates))]
        if not slots:
            raise ValueError("a candidate batch needs at least one candidate transcript")
        candidates = [per_item[row][k] for row, k in slots]
        starts = scored_from(candidates, self.completion_only_loss)
        flat_ids, flat_labels = pad_decoder_sequences([c.ids for c in candidates], starts, self.pad_token_id)
        k = max(self.min_candidates, *(len(c) for c in per_item))  # a batch whose rows all lack a rejected too
        shape = (len(items), k, flat_ids.shape[1])  # [B, K, L]
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        rows, columns = torch.tensor(slots).T
        input_ids[rows, columns], labels[rows, columns] = flat_ids, flat_labels
        batch = {
            "input_features": torch.from_numpy(np.stack([item["input_features"] for item in items])),
            "candidate_input_ids": input_ids,
            "candidate_labels": labels,
            "example_index": torch.tensor([item["index"] for item in items], dtype=torch.long),
        }
        if not self.chosen_only and all("word_errors" in item for item in items):
            errors = torch.zeros(shape[:2], dtype=torch.long)  # [B, K]
            errors[rows, columns] = torch.tensor([items[row]["word_errors"][k] for row, k in slots])
            batch[WORD_ERRORS_KEY] = errors
        return batch
