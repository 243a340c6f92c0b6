"""The corruption miner's controlled edits and the loop pairs' repetition loops (pairs/corruption.py)."""

from __future__ import annotations

import random

import pytest

from rlhf_asr.evaluation.normalize import normalize_text
from rlhf_asr.evaluation.repetition import has_repetition_loop
from rlhf_asr.pairs.corruption import corrupt_text, loop_text


def test_corrupt_text_words_and_characters():
    vocabulary = {"words": ["dog", "ran", "away"], "chars": list("天气很好")}
    rng = random.Random(0)
    for _ in range(20):
        english = corrupt_text("the cat sat on the mat", "en", rng, vocabulary)
        assert normalize_text(english) != "the cat sat on the mat"
        chinese = corrupt_text("今天，天气很好。", "zh", rng, vocabulary)
        assert normalize_text(chinese, "zh") != normalize_text("今天，天气很好。", "zh")
        assert "，" in chinese and chinese.endswith("。")  # punctuation untouched
    seeded = [corrupt_text("one small step", "en", random.Random(7), vocabulary) for _ in range(2)]
    assert seeded[0] == seeded[1]
    # nothing else to draw from: falls back to repeating a word
    assert corrupt_text("hello", "en", random.Random(0), {"words": ["hello"], "chars": []}) == "hello hello"


def test_loop_text_is_a_loop_that_starts_inside_the_reference():
    rng = random.Random(0)
    seen = set()
    for text, language in [
        ("An exotic journey in downtown Newark.", "en"),
        ("I am here", "en"),
        ("今天，天气很好。", "zh"),
    ]:
        for _ in range(30):
            looped = loop_text(text, language, rng)
            assert has_repetition_loop(looped, text), looped
            seen.add(looped)
    assert "An an an an an an" in seen  # a sentence's first word repeats mid-sentence, lower-cased
    assert any(s.startswith("An exotic journey in downtown Newark Newark Newark") for s in seen)  # names keep case
    assert "I I I I I I" in seen
    assert "今天，天气气气气气气" in seen  # the text before the loop is kept as written; punctuation never loops
    assert loop_text("one small step", "en", random.Random(3)) == loop_text("one small step", "en", random.Random(3))
    with pytest.raises(ValueError):
        loop_text("...", "en", rng)


def test_a_thai_loop_repeats_characters_as_written_marks_included():
    """Thai is edited by characters, and its vowel and tone marks are characters of the text: the
    looped n-gram is a stretch of the reference as written. With marks skipped (the rule corruption
    had before `data/text_rules.is_letter`), "สวัสดี" looped as "สวส", a syllable nobody wrote."""
    from rlhf_asr.pairs.corruption import LOOP_REPEATS

    text = "สวัสดีครับ"
    as_written = {text[:start] + text[start:stop] * LOOP_REPEATS for start in range(len(text))
                  for stop in range(start + 1, len(text) + 1)}  # fmt: skip
    for seed in range(20):
        looped = loop_text(text, "th", random.Random(seed))
        assert has_repetition_loop(looped, text) and looped in as_written, looped
