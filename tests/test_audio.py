"""Audio loading: any rate and channel count in, 16 kHz mono float32 out; bad files name themselves."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    "content, kind, reason",
    [(None, "unreadable audio", "cannot read"), (b"not audio" * 20, "unreadable audio", "cannot read"),
     (b"", "unreadable audio", "cannot read"), ("empty", "empty audio", "empty (0 frames)")],
)  # fmt: skip
def test_bad_files_raise_audio_error_with_path(tmp_path: Path, content, kind, reason):
    path = tmp_path / "bad.wav"
    if content == "empty":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif content is not None:
        path.write_bytes(content)
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioError) as caught:
            read(path)
        assert isinstance(caught.value, UserInputError)
        assert caught.value.kind == kind and caught.value.path == path
        assert str(caught.value).startswith(f"audio file {path}: {reason}")
