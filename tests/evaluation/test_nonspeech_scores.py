"""Scores of outputs on no-speech clips alone (`evaluation/hallucination.py`: nonspeech_rates and its shorthands)."""

from __future__ import annotations

import pytest

from rlhf_asr.evaluation.hallucination import hallucination_rate, repetition_rate


def test_hallucination_counts_words_not_punctuation_and_repetition_counts_loops():
    assert hallucination_rate(["", "you", " . ", "Thank you."]) == 0.5
    assert hallucination_rate([]) is None
    loop = "and and and and"
    assert repetition_rate(["a cat sat", "", ""], ["a cat sat", loop, "you"]) == pytest.approx(1 / 3)
