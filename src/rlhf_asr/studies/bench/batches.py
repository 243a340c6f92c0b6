"""Synthetic batches of the bench: random log-mel features and random transcripts of exact lengths.

Memory and time depend on shapes, not values, so every mode sees the same shapes: a pair batch
(chosen and rejected, the pair engines'), or a K-best batch (K candidates per clip, as
`CandidateCollator` yields them), with the word errors MWER reads and the stored reference
log-probs DPO reads (computed before training, so they come in as a tensor: no reference forward).
"""

from __future__ import annotations

import torch


def _transcripts(config, shape: tuple[int, ...], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoder inputs, labels) of `shape` (..., L): labels are random non-special ids, inputs [sot] + labels[:-1]."""
    labels = torch.randint(0, min(config.vocab_size, 50257), shape, generator=gen)
    start = torch.full((*shape[:-1], 1), config.decoder_start_token_id)
    return torch.cat([start, labels[..., :-1]], dim=-1), labels


def _features(config, batch: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(batch, config.num_mel_bins, 2 * config.max_source_positions, generator=gen)


def synthetic_batch(config, batch: int, label_len: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of `batch` pairs, each transcript exactly `label_len` tokens."""
    gen = torch.Generator().manual_seed(seed)
    features = _features(config, batch, gen)
    chosen_ids, chosen_labels = _transcripts(config, (batch, label_len), gen)
    rejected_ids, rejected_labels = _transcripts(config, (batch, label_len), gen)
    tensors = {
        "input_features": features,
        "chosen_input_ids": chosen_ids,
        "chosen_labels": chosen_labels,
        "rejected_input_ids": rejected_ids,
        "rejected_labels": rejected_labels,
    }
    return {key: value.to(device) for key, value in tensors.items()}


def candidate_batch(config, batch: int, k: int, label_len: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A K-best batch: `batch` clips with `k` candidates of `label_len` tokens each (candidate 0 the reference).

    Besides `forward_candidates`' arguments: `candidate_word_errors` [B, K] (0 for the reference)
    and `reference_logps` [B, K], stand-ins of a frozen starting model's sums (no gradient).
    """
    gen = torch.Generator().manual_seed(seed)
    features = _features(config, batch, gen)
    ids, labels = _transcripts(config, (batch, k, label_len), gen)
    errors = torch.randint(1, max(2, label_len // 4), (batch, k), generator=gen)
    errors[:, 0] = 0
    reference = -float(label_len) * (1.0 + torch.rand(batch, k, generator=gen))  # ~ -1 to -2 nats per token
    tensors = {
        "input_features": features,
        "candidate_input_ids": ids,
        "candidate_labels": labels,
        "candidate_word_errors": errors,
        "reference_logps": reference,
    }
    return {key: value.to(device) for key, value in tensors.items()}
