"""Whisper's decode-time guard (`inference/guard.py`): `generate` with the no-speech and log-prob thresholds."""

from __future__ import annotations

import pytest

from rlhf_asr.inference.guard import DecodeGuard, guard_transcripts
from rlhf_asr.studies.corpus import Corpus
from rlhf_asr.studies.nonspeech import add_nonspeech
from rlhf_asr.studies.stages import decode_hidden, encode_clips
from whisper_fixtures import make_tiny_model


@pytest.mark.slow
def test_decode_time_guard_is_generate_with_whispers_thresholds(tmp_path):
    model, processor = make_tiny_model()
    corpus = add_nonspeech(Corpus(tmp_path, {}), train=3, test=0, seed=0)
    paths = [tmp_path / u.path for u in corpus.splits["nonspeech_train"]]
    plain = decode_hidden(model, processor, encode_clips(model, processor, paths), [1.0] * 3, 8)
    # thresholds that never fire leave greedy decoding as it is; thresholds that always fire empty every window
    assert guard_transcripts(model, processor, paths, DecodeGuard(1.0, -1e9)) == plain
    assert any(plain) and guard_transcripts(model, processor, paths, DecodeGuard(-1.0, 1e9)) == ["", "", ""]
