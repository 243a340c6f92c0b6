"""The one rule on what a transcript may contain (data/text_rules.py)."""

from __future__ import annotations

import pytest

from rlhf_asr.data.text_rules import NO_SPEECH, SPEECH, is_letter, row_kind, text_problem


@pytest.mark.parametrize(
    "text",
    ["", "hello world", "tab\there", "two\nlines", "café naïve", "日本語のテキスト", "emoji 🙂", "\ue000 private use"],
)
def test_ordinary_text_passes(text):
    assert text_problem(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b", "control character U+0000 at character 1"),
        ("\x07bell", "control character U+0007 at character 0"),
        ("esc \x1b[31m", "control character U+001B at character 4"),
        ("del\x7f", "control character U+007F at character 3"),
        ("c1 \x85", "control character U+0085 at character 3"),
        ("abc\u202edef", "bidirectional override U+202E (RIGHT-TO-LEFT OVERRIDE) at character 3"),
        ("\u2066isolate", "bidirectional override U+2066 (LEFT-TO-RIGHT ISOLATE) at character 0"),
        ("lone \ud800", "lone surrogate U+D800 at character 5"),
    ],
)
def test_unsafe_characters_are_named(text, expected):
    assert expected in text_problem(text)


def test_one_row_kind_for_mining_and_evaluation():
    """Mining's Miner and evaluation's score_rows read a reference's kind by the same rule."""
    from rlhf_asr.evaluation import hallucination
    from rlhf_asr.pairs import choice, items

    assert hallucination.row_kind is choice.row_kind is items.row_kind is row_kind
    assert [row_kind(text) for text in ("", "hello", ".", "  ")] == [NO_SPEECH, SPEECH, SPEECH, NO_SPEECH]
    assert (SPEECH, NO_SPEECH) == ("speech", "no_speech")  # the kinds written in rows and metrics


# Where the two rules once differed: corruption counted L and N, the repetition metric L, N and M.
# Marks are written inside syllables, so both now count them.
@pytest.mark.parametrize(
    ("character", "letter"),
    [
        ("\u0e31", True),  # THAI CHARACTER MAI HAN-AKAT (Mn): the vowel mark in "สวัสดี"
        ("\u0e49", True),  # THAI CHARACTER MAI THO (Mn): a tone mark
        ("\u093f", True),  # DEVANAGARI VOWEL SIGN I (Mc): in "नमस्ते"-like words
        ("\u094d", True),  # DEVANAGARI SIGN VIRAMA (Mn)
        ("\u0301", True),  # COMBINING ACUTE ACCENT (Mn): a decomposed "é"
        ("a", True),
        ("7", True),  # digits are said
        ("天", True),  # CJK (Lo)
        ("ก", True),  # THAI CHARACTER KO KAI (Lo)
        ("，", False),
        (".", False),
        (" ", False),
        ("♪", False),
    ],
)
def test_one_letter_rule_counts_marks_digits_and_cjk(character, letter):
    from rlhf_asr.evaluation import repetition
    from rlhf_asr.pairs import corruption

    assert repetition.is_letter is corruption.is_letter is is_letter
    assert is_letter(character) is letter


def test_marks_stay_in_the_units_of_both_users():
    from rlhf_asr.evaluation.repetition import text_units
    from rlhf_asr.pairs.corruption import reference_vocabulary

    assert text_units("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # whole words, vowel signs and virama kept
    assert "\u0e31" in reference_vocabulary(["สวัสดี"])["chars"]  # a character unit for Thai edits
