"""Hallucination metrics on hand-computed row sets: words on no speech, inserted words, loops."""

from __future__ import annotations

import pytest

from rlhf_asr.evaluation.hallucination import (
    NO_SPEECH,
    SPEECH,
    RowOutcome,
    hallucination_metrics,
    is_silent,
    row_kind,
    score_rows,
)
from rlhf_asr.evaluation.metrics import score_utterance

# (reference, hypothesis): "" as reference is a no-speech row
ROWS = [
    ("the cat sat", "the cat sat on the mat"),  # 3 inserted words of 3; 6 words is no loop (limit 2 x 3 + 4)
    ("hello world", "hello hello hello hello world"),  # 3 inserted of 2; "hello" 4 times in a row: a loop
    ("good morning everyone", "good morning"),  # 1 deletion, no insertion
    ("", ""),  # silent on silence
    ("", "You"),  # one word on silence: a hallucination
    ("", "..."),  # punctuation only: no word (the normaliser leaves ".")
    ("", "Thank you. Thank you. Thank you."),  # a hallucination and a loop
]


def test_row_kind():
    assert row_kind("") == NO_SPEECH and row_kind("hello") == SPEECH


def test_rates_computed_by_hand():
    result = score_rows([r for r, _ in ROWS], [h for _, h in ROWS], "en")
    assert (result["rows_speech"], result["rows_no_speech"]) == (3, 4)
    assert result["hallucination_rate"] == pytest.approx(2 / 4)  # "You", "Thank you..." of 4 no-speech rows
    assert result["insertion_rate"] == pytest.approx((3 + 3 + 0) / (3 + 2 + 3))
    assert result["repetition_rate"] == pytest.approx(2 / 7)  # of all outputs
    # WER on speech rows only: 3 + 3 insertions and 1 deletion over 8 words; no-speech words do not count
    assert result["wer"] == pytest.approx(7 / 8)
    assert (result["word_errors"], result["reference_words"]) == (7, 8)
    assert result["cer"] == pytest.approx(result["char_errors"] / result["reference_chars"])
    assert [u["kind"] for u in result["utterances"]] == [SPEECH] * 3 + [NO_SPEECH] * 4
    assert [u["loop"] for u in result["utterances"]] == [False, True, False, False, False, False, True]
    assert [u["word_insertions"] for u in result["utterances"][:3]] == [3, 3, 0]


def test_without_no_speech_rows_hallucination_rate_is_null_not_zero():
    result = score_rows(["the cat sat"], ["the cat sat"], "en")
    assert result["hallucination_rate"] is None and result["rows_no_speech"] == 0
    assert result["insertion_rate"] == 0.0 and result["repetition_rate"] == 0.0 and result["wer"] == 0.0


def test_only_no_speech_rows_have_no_speech_rates():
    result = score_rows(["", "", ""], ["Hmm.", "you", "(music) ♪"], "en")  # the normaliser drops these
    assert result["hallucination_rate"] == pytest.approx(1 / 3)
    assert result["wer"] is None and result["cer"] is None and result["insertion_rate"] is None
    assert result["rows_speech"] == 0 and result["repetition_rate"] == 0.0


def test_no_speech_length_is_a_hallucination_not_a_loop():
    """On silence any words are counted as hallucination; only real repeats count as a loop there."""
    result = score_rows([""], ["Thanks for watching, please subscribe to my channel"], "en")
    assert result["hallucination_rate"] == 1.0 and result["repetition_rate"] == 0.0
    # the same words far longer than a speech reference are a loop (has_repetition_loop's length rule)
    assert score_rows(["bye"], ["Thanks for watching, please subscribe to my channel"], "en")["repetition_rate"] == 1


def test_characters_languages_count_any_character_as_written():
    result = score_rows(["", "你好世界"], ["谢谢", "你好世界"], ["zh", "zh"])
    assert result["hallucination_rate"] == 1.0 and result["cer"] == 0.0


def test_word_insertions_counted_per_utterance():
    assert score_utterance("a b c", "x a b c d e", "en").word_insertions == 3
    assert score_utterance("", "a b", "en").word_insertions == 2
    assert score_utterance("a b c", "", "en").word_insertions == 0


def test_hallucination_metrics_from_outcomes():
    outcomes = [
        RowOutcome(SPEECH, words_written=4, word_insertions=1, reference_words=3, loop=False),
        RowOutcome(NO_SPEECH, words_written=0, word_insertions=0, reference_words=0, loop=False),
        RowOutcome(NO_SPEECH, words_written=0, word_insertions=0, reference_words=0, loop=False, any_output=True),
        RowOutcome(NO_SPEECH, words_written=5, word_insertions=5, reference_words=0, loop=True, any_output=True),
    ]
    assert hallucination_metrics(outcomes) == {
        "hallucination_rate": pytest.approx(1 / 3),
        "nonspeech_output_rate": pytest.approx(2 / 3),
        "insertion_rate": pytest.approx(1 / 3),
        "repetition_rate": pytest.approx(1 / 4),
        "rows_speech": 1,
        "rows_no_speech": 3,
        "hallucinated_rows": 1,
        "nonspeech_output_rows": 2,
        "inserted_words": 1,
        "loop_rows": 1,
    }
    assert hallucination_metrics([])["hallucination_rate"] is None


@pytest.mark.parametrize(("text", "silent"), [("", True), ("  \n", True), (".", False), ("...", False), ("you", False)])
def test_one_definition_of_silent_counts_punctuation_as_output(text, silent):
    assert is_silent(text) is silent


def test_a_dot_on_no_speech_is_output_but_not_a_hallucinated_word():
    """What the deployed model shows: "." on silence is a subtitle cue, counted by the strict rate."""
    scored = score_rows(["", "", ""], [".", "", "you"], "en")
    assert scored["hallucination_rate"] == pytest.approx(1 / 3)
    assert scored["nonspeech_output_rate"] == pytest.approx(2 / 3)
