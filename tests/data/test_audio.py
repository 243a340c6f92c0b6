"""Audio loading: any rate and channel count in, 16 kHz mono float32 out; bad files name themselves."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rlhf_asr.data.audio import AudioError, audio_duration, load_audio
from rlhf_asr.errors import UserInputError


def sine(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_44k_becomes_mono_16k(tmp_path: Path):
    left = sine(1.5, 44100)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 44100, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 24000  # 1.5 s at 16 kHz
    # mean of a 0.5 sine and silence: a 0.25 sine, whose RMS is 0.25 / sqrt(2)
    assert np.sqrt(np.mean(audio[1000:-1000] ** 2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.01)
    assert audio_duration(path) == pytest.approx(1.5)


def test_flac_at_16k_is_read_unchanged(tmp_path: Path):
    samples = sine(0.5, 16000)
    path = tmp_path / "a.flac"
    sf.write(path, samples, 16000)
    np.testing.assert_allclose(load_audio(path), samples, atol=1e-4)  # 16-bit FLAC quantisation only


def test_other_target_rate(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, sine(1.0, 16000), 16000)
    assert len(load_audio(path, sampling_rate=8000)) == 8000


def _float_wav(path: Path, bad_value: float, subtype: str = "FLOAT") -> None:
    samples = np.full(32000, 0.1, np.float64)
    samples[8000] = bad_value  # at 0.5 s
    sf.write(path, np.stack([samples, samples], axis=1), 16000, subtype=subtype)


def _make(path: Path, content) -> None:
    """One kind of bad audio path at `path`."""
    if content == "empty":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif content == "folder":
        path.mkdir()
    elif content == "loop":
        path.symlink_to(path.with_name("other.wav"))
        path.with_name("other.wav").symlink_to(path)
    elif content == "broken link":
        path.symlink_to(path.with_name("nowhere.wav"))
    elif content == "fifo":
        os.mkfifo(path)
    elif content in ("nan", "inf"):
        _float_wav(path, float(content))
    elif content == "double over float32":
        _float_wav(path, 1e300, subtype="DOUBLE")
    elif content is not None:
        path.write_bytes(content)


BAD_FILES = [
    (None, "audio file missing", "no such file"),
    ("broken link", "audio file missing", "broken symlink to {folder}/nowhere.wav"),
    ("folder", "audio path is a folder", "is a folder, not an audio file"),
    ("loop", "symlink loop", "the link leads back to itself (a symlink loop)"),
    ("fifo", "not a regular file", "is a named pipe, not an audio file"),
    (b"", "empty audio", "empty file (0 bytes)"),
    ("empty", "empty audio", "empty (0 frames)"),
    (b"not audio" * 20, "unreadable audio", "cannot read as audio: Format not recognised"),
    (b"RIFF\0\0\0\0WAVEjunk" * 4, "unreadable audio", "cannot read as audio: Error in WAV file"),
    ("nan", "non-finite audio", "has NaN or inf samples (first at 0.500 s)"),
    ("inf", "non-finite audio", "has NaN or inf samples (first at 0.500 s)"),
    ("double over float32", "non-finite audio", "has NaN or inf samples (first at 0.500 s)"),
]


@pytest.mark.parametrize("content, kind, reason", BAD_FILES, ids=[f"{i}-{c[1]}" for i, c in enumerate(BAD_FILES)])
def test_bad_files_raise_audio_error_with_path(tmp_path: Path, content, kind, reason):
    path = tmp_path / "bad.wav"
    _make(path, content)
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioError) as caught:
            read(path)
        assert isinstance(caught.value, UserInputError)
        assert caught.value.kind == kind and caught.value.path == path
        assert str(caught.value).startswith(f"audio file {path}: {reason.format(folder=tmp_path)}"), str(caught.value)


@pytest.mark.parametrize(
    "name, kind, reason",
    [
        ("a\0.wav", "bad audio path", "the path contains a NUL character"),
        ("x" * 300 + ".wav", "bad audio path", "File name too long"),
    ],
)
def test_bad_paths(tmp_path: Path, name, kind, reason):
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioError, match=reason) as caught:
            read(tmp_path / name)
        assert caught.value.kind == kind and "\0" not in str(caught.value)


@contextmanager
def _unprivileged():
    """Root reads any file: drop the effective user to nobody so that file permissions apply."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_permission_denied(tmp_path: Path):
    folder = Path(tempfile.mkdtemp())  # not under pytest's 0700 folder, which nobody cannot enter
    try:
        folder.chmod(0o755)
        path = folder / "locked.wav"
        sf.write(path, sine(0.5, 16000), 16000)
        path.chmod(0)
        with _unprivileged():
            for read in (load_audio, audio_duration):
                with pytest.raises(AudioError, match="permission denied .the file cannot be opened") as caught:
                    read(path)
                assert caught.value.kind == "permission denied"
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    "rate, channels, subtype, fmt",
    [(8000, 1, "PCM_U8", "WAV"), (22050, 2, "PCM_24", "WAV"), (48000, 6, "PCM_16", "WAV"),
     (44100, 2, "PCM_16", "FLAC"), (16000, 1, "VORBIS", "OGG"), (32000, 1, "MPEG_LAYER_III", "MP3"),
     (16000, 1, "DOUBLE", "WAV")],
)  # fmt: skip
def test_common_encodings_become_16k_mono(tmp_path: Path, rate, channels, subtype, fmt):
    samples = sine(1.0, rate, amplitude=0.4)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, np.stack([samples] * channels, axis=1), rate, subtype=subtype, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()
    assert len(audio) == pytest.approx(16000, abs=1200)  # mp3 adds encoder padding
    assert np.sqrt(np.mean(audio[2000:-2000] ** 2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.1)
    assert audio_duration(path) == pytest.approx(1.0, abs=0.08)
