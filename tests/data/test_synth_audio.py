"""`data/synth_audio.py`'s speech: espeak-ng synthesis (its sounds: tests/data/test_nonspeech.py)."""

from __future__ import annotations

import pytest

from rlhf_asr.data import synth_audio as synth
from rlhf_asr.data.audio import load_audio
from study_fixtures import needs_espeak


@needs_espeak
def test_synthesize_gives_plausible_duration(tmp_path):
    text = "The quick brown fox jumps over the lazy dog."
    path = tmp_path / "fox.wav"
    duration = synth.synthesize(text, path, voice="en-us", speed=160)
    # nine words at 160 words per minute: about 3.4 s of speech, plus espeak's pauses
    assert 2.0 < duration < 6.0
    audio = load_audio(path)
    assert len(audio) == pytest.approx(duration * 16000, rel=0.01)
    assert abs(audio).max() > 0.05  # not silence
    slow = synth.synthesize(text, tmp_path / "slow.wav", voice="en-us", speed=110)
    assert slow > duration


@needs_espeak
def test_text_starting_with_a_dash_is_spoken_not_parsed(tmp_path):
    assert synth.synthesize("-v is not an option here.", tmp_path / "dash.wav") > 0.5
