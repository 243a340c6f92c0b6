"""Audio files to the 16 kHz mono float32 arrays Whisper's feature extractor expects.

Whisper was trained on 16 kHz mono, so every file is mixed down and resampled here, once,
instead of trusting each dataset to be stored that way. soxr (high quality) is used for the
resampling because a poor resampler adds aliasing the model never saw in pre-training.

Every way a file can be unusable gets its own `AudioError.kind` and reason, so a manifest report
says what to fix ("is a folder", "symlink loop", "permission denied", "cannot read as audio:
Format not recognised."), not just "missing" or libsndfile's "System error.". One NaN or inf sample turns
every weight NaN after a single step, so non-finite samples are an error too, never passed on.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import soundfile
import soxr

from rlhf_asr.errors import UserInputError

WHISPER_SAMPLING_RATE = 16000
WHISPER_MAX_SECONDS = 30.0  # Whisper's input window; longer audio is cut by the feature extractor
# Encodings that store floats, the only ones whose samples can be NaN or inf (a DOUBLE above
# float32's range also becomes inf when read as float32). Integer PCM, FLAC and the like cannot.
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
_BLOCK_FRAMES = 16000 * 30  # frames decoded at a time when checking samples
# One analysis window of Whisper's log-Mel features (n_fft 400 samples at 16 kHz): a clip shorter
# than that has no complete frame, so no word can be in it; such a file is broken, not a short clip.
MIN_AUDIO_SECONDS = 0.025
_WAV_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
# RIFF/WAVE data sizes that mean "unknown" (written by a streaming encoder that could not seek back).
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF)


class AudioError(UserInputError):
    """An audio file that cannot be used.

    `kind` is the short category a manifest report counts ("audio file missing", "audio path is
    a folder", "symlink loop", "not a regular file", "bad audio path", "permission denied",
    "empty audio", "unreadable audio", "truncated audio", "non-finite audio"); `reason` says what
    exactly is wrong.
    """

    def __init__(self, path: str | Path, reason: str, kind: str = "unreadable audio"):
        self.path, self.reason, self.kind = Path(path), reason, kind
        super().__init__(f"audio file {self.path}: {reason}")


_FILE_TYPES = [(stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]  # fmt: skip


def check_audio_path(path: str | Path) -> None:
    """Raise AudioError unless `path` is a readable, non-empty regular file (cheap: stat + open).

    Checked before libsndfile sees the file: it would report most of these as "System error."
    and would block forever reading a named pipe.
    """
    if "\0" in str(path):
        raise AudioError(str(path).replace("\0", "\\0"), "the path contains a NUL character", "bad audio path")
    try:
        info = os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise AudioError(path, "the link leads back to itself (a symlink loop)", "symlink loop") from None
        if error.errno == errno.ENOENT and os.path.islink(path):
            target = os.readlink(path)
            raise AudioError(path, f"broken symlink to {target} (no such file)", "audio file missing") from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise AudioError(path, "no such file", "audio file missing") from None
        if error.errno == errno.EACCES:
            raise AudioError(path, "permission denied (a folder on the path cannot be searched)",
                             "permission denied") from None  # fmt: skip
        raise AudioError(path, error.strerror or str(error), "bad audio path") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(path, "is a folder, not an audio file", "audio path is a folder")
    if not stat.S_ISREG(info.st_mode):
        what = next((name for test, name in _FILE_TYPES if test(info.st_mode)), "not a regular file")
        raise AudioError(path, f"is {what}, not an audio file", "not a regular file")
    try:
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        reason = "permission denied (the file cannot be opened for reading)"
        raise AudioError(path, reason, "permission denied") from None
    except OSError as error:
        raise AudioError(path, f"cannot open: {error.strerror or error}", "unreadable audio") from None
    if info.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)", "empty audio")


def _decode_error(path: str | Path, error: Exception) -> AudioError:
    """libsndfile's own reason ("Format not recognised.") without its repeated "Error opening 'path': "."""
    detail = getattr(error, "error_string", None) or str(error)
    return AudioError(path, f"cannot read as audio: {detail}", "unreadable audio")


def _check_finite(path: str | Path, samples: np.ndarray, rate: int, offset: int = 0) -> None:
    """Raise AudioError when `samples` [frames, channels] hold a NaN or inf."""
    bad = ~np.isfinite(samples)
    if bad.any():
        first = offset + int(np.argmax(bad.any(axis=-1) if bad.ndim > 1 else bad))
        raise AudioError(
            path,
            f"has NaN or inf samples (first at {first / rate:.3f} s); one such sample makes every weight NaN",
            "non-finite audio",
        )


def _wav_declared_frames(path: str | Path, frame_bytes: int) -> int | None:
    """Frames the data chunk of a RIFF/WAVE file declares, or None where it declares no size."""
    with open(path, "rb") as handle:
        if handle.read(4) != b"RIFF" or not handle.read(4) or handle.read(4) != b"WAVE":
            return None
        while len(header := handle.read(8)) == 8:
            size = int.from_bytes(header[4:], "little")
            if header[:4] == b"data":
                return None if size in _UNKNOWN_WAV_SIZES else size // frame_bytes
            handle.seek(size + size % 2, os.SEEK_CUR)  # chunks are padded to an even size
    return None


def _check_not_cut(path: str | Path, info) -> None:
    """AudioError when a WAV holds fewer frames than its header declares (an interrupted copy or export).

    libsndfile reads such a file without complaint, as the frames that are there: a clip cut to
    8 samples would otherwise pass as 0.5 ms of audio, its transcript covering what was lost.
    """
    sample_bytes = _WAV_SAMPLE_BYTES.get(info.subtype)
    if info.format != "WAV" or sample_bytes is None or info.samplerate <= 0:
        return  # compressed encodings (ADPCM, ...): no fixed frame size to count by
    try:
        declared = _wav_declared_frames(path, sample_bytes * info.channels)
    except OSError:
        return  # libsndfile has just read it; a file that vanished since is the loader's to report
    if declared is not None and declared > info.frames:
        reason = (
            f"cut short: its header declares {declared} frames ({declared / info.samplerate:.2f} s), "
            f"the file holds {info.frames}"
        )
        raise AudioError(path, reason, "truncated audio")


def audio_duration(path: str | Path) -> float:
    """Duration in seconds, from the header; float-encoded files are also decoded and checked for NaN/inf.

    Integer encodings (the usual 16-bit WAV, FLAC) cannot hold NaN or inf, so for them this stays
    a header read; float WAVs are decoded block by block to catch a non-finite sample up front.
    """
    check_audio_path(path)
    try:
        info = soundfile.info(str(path))
    except (OSError, RuntimeError) as error:  # libsndfile errors are RuntimeError subclasses
        raise _decode_error(path, error) from None
    _check_not_cut(path, info)  # first: a file cut to its header is cut short, not a recording of nothing
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "empty (0 frames)", kind="empty audio")
    if info.subtype in FLOAT_SUBTYPES:
        try:
            blocks = soundfile.blocks(str(path), blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True)
            for index, block in enumerate(blocks):
                _check_finite(path, block, info.samplerate, index * _BLOCK_FRAMES)
        except (OSError, RuntimeError) as error:
            raise _decode_error(path, error) from None
    return info.frames / info.samplerate


def load_audio(path: str | Path, sampling_rate: int = WHISPER_SAMPLING_RATE) -> np.ndarray:
    """Decode `path` to a mono float32 array at `sampling_rate` (channels averaged); finite, never empty."""
    check_audio_path(path)
    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # [frames, channels]
    except (OSError, RuntimeError) as error:
        raise _decode_error(path, error) from None
    if samples.shape[0] == 0:
        raise AudioError(path, "empty (0 frames)", kind="empty audio")
    _check_finite(path, samples, file_rate)
    mono = samples.mean(axis=1, dtype=np.float32)  # [frames]
    if file_rate != sampling_rate:
        mono = soxr.resample(mono, file_rate, sampling_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)
