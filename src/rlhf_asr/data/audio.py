"""Audio files to the 16 kHz mono float32 arrays Whisper's feature extractor expects.

Whisper was trained on 16 kHz mono, so every file is mixed down and resampled here, once,
instead of trusting each dataset to be stored that way. soxr (high quality) is used for the
resampling because a poor resampler adds aliasing the model never saw in pre-training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from rlhf_asr.errors import UserInputError

WHISPER_SAMPLING_RATE = 16000
WHISPER_MAX_SECONDS = 30.0  # Whisper's input window; longer audio is cut by the feature extractor


class AudioError(UserInputError):
    """An audio file that cannot be used: unreadable, or without a single frame.

    `kind` ("unreadable audio" / "empty audio") lets manifest reports count problems by type.
    """

    def __init__(self, path: str | Path, reason: str, kind: str = "unreadable audio"):
        self.path, self.reason, self.kind = Path(path), reason, kind
        super().__init__(f"audio file {self.path}: {reason}")


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header only (cheap: nothing is decoded)."""
    try:
        info = soundfile.info(str(path))
    except (OSError, RuntimeError) as error:  # libsndfile errors are RuntimeError subclasses
        raise AudioError(path, f"cannot read: {error}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "empty (0 frames)", kind="empty audio")
    return info.frames / info.samplerate


def load_audio(path: str | Path, sampling_rate: int = WHISPER_SAMPLING_RATE) -> np.ndarray:
    """Decode `path` to a mono float32 array at `sampling_rate` (channels averaged)."""
    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as error:
        raise AudioError(path, f"cannot read: {error}") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "empty (0 frames)", kind="empty audio")
    mono = samples.mean(axis=1, dtype=np.float32)
    if file_rate != sampling_rate:
        mono = soxr.resample(mono, file_rate, sampling_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)
