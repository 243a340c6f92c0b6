"""Encoder outputs kept across epochs, for a frozen encoder and unaugmented audio.

With the encoder frozen and no augmentation, an utterance's encoder output never changes, so
later epochs can skip the encoder altogether. Opt-in and bounded: in memory up to a size limit
(first come, first kept), or on disk as one file per utterance.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class EncoderCache:
    """Maps a dataset index to its encoder output [frames, d].

    Args:
        max_bytes: memory budget for the in-memory store; utterances past it are recomputed.
        directory: when set, outputs are stored as files here instead (no memory bound needed).
    """

    def __init__(self, max_bytes: int = 2 * 1024**3, directory: str | Path | None = None):
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory else None
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._memory: dict[int, torch.Tensor] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def _load(self, index: int) -> torch.Tensor | None:
        if self.directory is None:
            return self._memory.get(index)
        path = self.directory / f"{index}.pt"
        return torch.load(path) if path.exists() else None

    def _store(self, index: int, value: torch.Tensor) -> None:
        if self.directory is not None:
            torch.save(value.clone(), self.directory / f"{index}.pt")
        elif self._bytes + value.numel() * value.element_size() <= self.max_bytes:
            self._memory[index] = value.clone()
            self._bytes += value.numel() * value.element_size()

    def put(self, index: int, value: torch.Tensor) -> None:
        """Stores an encoder output [frames, d] computed elsewhere (e.g. while decoding)."""
        self._store(index, value.detach())

    @torch.no_grad()
    def get_or_compute(self, indices: torch.Tensor, input_features: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """Encoder output [B, frames, d] for a batch, computing only the utterances not cached."""
        found = [self._load(int(i)) for i in indices]
        missing = [row for row, value in enumerate(found) if value is None]
        self.hits += len(found) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = encoder(input_features[missing]).last_hidden_state
            for row, value in zip(missing, computed):
                found[row] = value
                self._store(int(indices[row]), value)
        return torch.stack([value.to(input_features.device) for value in found])
