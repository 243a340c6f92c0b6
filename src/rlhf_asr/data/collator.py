"""Batches of preference pairs: one audio per pair, two label sequences.

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

from rlhf_asr.loss.logps import IGNORE_INDEX


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


@dataclass
class PreferenceCollator:
    """Turns dataset items into a batch for the preference engine.

    Items: `input_features` [n_mels, frames], `chosen` / `rejected` EncodedTranscript, `index`.
    Batch: `input_features`, `chosen_input_ids`, `chosen_labels`, `rejected_input_ids`,
    `rejected_labels`, `example_index`, and with scope "diverging" `chosen_odds_labels` (the
    chosen's odds span: `chosen_labels` with the shared prefix also -100).
    """

    pad_token_id: int
    disable_prompt_loss: bool = False
    rejected_scope: str = "all"  # "all" | "diverging"

    def __post_init__(self):
        if self.rejected_scope not in {"all", "diverging"}:
            raise ValueError(f"rejected_scope must be 'all' or 'diverging', not {self.rejected_scope!r}")

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        chosen = [item["chosen"] for item in items]
        rejected = [item["rejected"] for item in items]
        # The first scored token: 1 skips only <|startoftranscript|>, which is never predicted.
        chosen_from = [c.prefix_len if self.disable_prompt_loss else 1 for c in chosen]
        rejected_from = [r.prefix_len if self.disable_prompt_loss else 1 for r in rejected]
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
