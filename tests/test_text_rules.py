"""The one rule on what a transcript may contain (data/text_rules.py)."""

from __future__ import annotations

import pytest

from rlhf_asr.data.text_rules import text_problem


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
