"""Encoder outputs kept across epochs, for a frozen encoder and unaugmented audio.

With the encoder frozen and no augmentation, an utterance's encoder output never changes, so
later epochs can skip the encoder altogether. Opt-in and bounded: in memory up to a size limit
(first come, first kept), or on disk as one file per utterance.

An entry is valid only for the same audio through the same encoder, so it is keyed by both:
`audio_key` (the file's resolved path, size and modification time) and `encoder_fingerprint`
(the encoder's weights and the configuration fields that shape its output). A row's position
in its manifest is no key: row i of a test set, or of another run's manifest written into the
same output folder, is other audio. A `split` ("train" / "eval") keeps the outputs of the two
model modes apart, since dropout makes them differ when the config has any.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

# Config fields that change what the encoder computes (architecture, input size, dropout).
ENCODER_CONFIG_FIELDS = (
    "model_type",
    "num_mel_bins",
    "d_model",
    "max_source_positions",
    "scale_embedding",
    "activation_function",
    "dropout",
    "attention_dropout",
    "activation_dropout",
)


def audio_key(path: str | Path) -> int:
    """A stable int64 naming one audio file's current content: its resolved path, size and mtime_ns.

    An int, so it travels through the collator as a tensor; rewriting the file changes it.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    identity = f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    return int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest(), "little", signed=True)


def encoder_fingerprint(model: nn.Module) -> str:
    """Hex digest of a Whisper's encoder: every weight (names, dtypes, shapes, bytes) and its config.

    Another base checkpoint, another fine-tuned encoder or another dtype gives another fingerprint,
    so one model never reads another's entries. Hashes every weight byte, once per run (the
    engine keeps it): blake2b ran at 100-160 MB/s on the busy 2-core test machine, so a fraction
    of a second for tiny, tens of seconds for large-v3's 2.5 GB fp32 encoder.
    """
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = core.config.to_dict()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({key: config.get(key) for key in ENCODER_CONFIG_FIELDS}, sort_keys=True).encode())
    for name, tensor in sorted(core.model.encoder.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return digest.hexdigest()


class EncoderCache:
    """Maps (encoder fingerprint, split, audio key) to an encoder output [frames, d].

    Args:
        max_bytes: memory budget for the in-memory store; utterances past it are recomputed.
        directory: when set, outputs are stored as files here instead (no memory bound needed),
            under `<fingerprint>/<split>/<audio key>.pt`, so a later run with other audio or
            another model finds nothing of this one's.
    """

    def __init__(self, max_bytes: int = 2 * 1024**3, directory: str | Path | None = None):
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory else None
        self._memory: dict[tuple[str, str, int], torch.Tensor] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def _path(self, key: tuple[str, str, int]) -> Path:
        model, split, audio = key
        return self.directory / model / split / f"{audio & 0xFFFFFFFFFFFFFFFF:016x}.pt"

    def _load(self, key: tuple[str, str, int]) -> torch.Tensor | None:
        if self.directory is None:
            return self._memory.get(key)
        path = self._path(key)
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None

    def _store(self, key: tuple[str, str, int], value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if self.directory is not None:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save(value.detach().to("cpu").clone(), partial)
            os.replace(partial, path)  # a run killed mid-write leaves no truncated entry behind
        elif self._bytes + size <= self.max_bytes:
            self._memory[key] = value.detach().clone()
            self._bytes += size

    def put(self, fingerprint: str, audio: int, value: torch.Tensor, split: str = "train") -> None:
        """Stores an encoder output [frames, d] computed elsewhere (e.g. while decoding)."""
        self._store((fingerprint, split, int(audio)), value)

    @torch.no_grad()
    def get_or_compute(
        self, fingerprint: str, audio_keys: torch.Tensor, input_features: torch.Tensor, encoder: nn.Module, split: str
    ) -> torch.Tensor:
        """Encoder output [B, frames, d] for a batch, computing only the utterances not cached.

        `audio_keys` [B] are `audio_key` values of the batch's audio files.
        """
        keys = [(fingerprint, split, int(audio)) for audio in audio_keys]
        found = [self._load(key) for key in keys]
        missing = [row for row, value in enumerate(found) if value is None]
        self.hits += len(found) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = encoder(input_features[missing]).last_hidden_state  # [len(missing), frames, d]
            for row, value in zip(missing, computed):
                found[row] = value
                self._store(keys[row], value)
        return torch.stack([value.to(input_features.device) for value in found])
