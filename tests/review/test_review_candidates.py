"""Candidates are precomputed with make-pairs' decoding, stored, and never decoded twice."""

from __future__ import annotations

import pytest

from review_fixtures import make_review_data
from rlhf_asr.data.audio import load_audio
from rlhf_asr.inference.decode import decode_audio
from rlhf_asr.review.candidates import merge_candidates, precompute_candidates
from rlhf_asr.review.clips import fingerprint, read_clips
from rlhf_asr.review.store import MODEL, ReviewStore
from whisper_fixtures import make_tiny_model


def test_precomputed_candidates_are_the_beam_n_best_then_the_reference(tmp_path):
    manifest, _ = make_review_data(tmp_path, clips=2)
    store = ReviewStore(tmp_path / "fresh.sqlite")
    clips = read_clips(manifest)
    store.attach_dataset(clips, fingerprint(clips, manifest), str(manifest))
    model, processor = make_tiny_model()
    assert precompute_candidates(store, model, processor, num_candidates=2, batch_size=2) == 2
    # the same decoding as make-pairs: beam search, num_beams = num_return_sequences = N, scored
    expected = decode_audio(
        model, processor, [load_audio(c.audio_path) for c in clips], num_beams=2, num_return_sequences=2, score=True
    )
    for clip_id, (clip, nbest) in enumerate(zip(clips, expected), 1):
        stored = [(row["origin"], row["text"]) for row in store.candidates(clip_id)]
        assert stored == [(origin, text) for origin, text, _ in merge_candidates(nbest, list(clip.texts))]
        assert stored[-1] == ("reference", clip.texts[0][1])
        logprobs = [row["logprob"] for row in store.candidates(clip_id) if row["origin"] == MODEL]
        assert logprobs == pytest.approx([c.logprob for c in nbest if c.text.strip()][: len(logprobs)], abs=1e-5)
    assert precompute_candidates(store, model, processor) == 0  # resumed: nothing left to decode


def test_merge_keeps_distinct_non_empty_texts_in_order():
    from rlhf_asr.inference.decode import Candidate

    merged = merge_candidates(
        [Candidate("a  b", -1.0), Candidate("a b", -2.0), Candidate("", -3.0), Candidate("a c", -4.0)],
        [("reference", "a c"), ("reference", "x")],
    )
    assert merged == [(MODEL, "a b", -1.0), (MODEL, "a c", -4.0), ("reference", "x", None)]
