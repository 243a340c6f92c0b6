"""Repetition loops: Whisper's second hallucination after words on silence.

A decoder that loses track of the audio keeps predicting what it just wrote ("and and and ...",
"Thank you. Thank you. Thank you. ..."), usually until the token limit. Word error rate hides
the loop when the reference itself is short or when another candidate has as many errors, so
mining and metrics test for it directly:

- a *loop* is an n-gram (n = 1..MAX_NGRAM units) repeated MIN_REPEATS or more times in a row;
- a hypothesis *far longer* than its reference (more than LENGTH_RATIO x the reference's units
  plus LENGTH_SLACK) is a loop too: the repeats then need not be exact.

Units are words, compared after case folding and with punctuation stripped ("No, no, no." is
three "no"s). Texts written without spaces (Chinese, Japanese, Thai, ...) are compared by
characters; one character carries less than a word, so there the repeated stretch must also
cover MIN_CHARACTER_SPAN characters ("哈哈哈" is laughter, not a loop). Nothing here depends on a
language's vocabulary: two repeats ("no no", "bye bye") are ordinary speech and never count, and
neither do the repeats the reference itself has ("very, very, very good": the hypothesis loops
only when it repeats more than that).
"""

from __future__ import annotations

import unicodedata

from rlhf_asr.data.text_rules import is_letter

MIN_REPEATS = 3
MAX_NGRAM = 8  # words
MAX_CHARACTER_NGRAM = 24  # characters, for texts without spaces (about 8 words of Chinese)
MIN_CHARACTER_SPAN = 6
LENGTH_RATIO = 2.0
LENGTH_SLACK = 4  # words; characters count LENGTH_SLACK * CHARACTERS_PER_WORD
CHARACTERS_PER_WORD = 2

# Scripts written without spaces between words: their texts are compared by characters.
_SPACELESS_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN")


def _spaceless(text: str) -> bool:
    """True when most letters are in a script written without spaces between words."""
    letters = [c for c in text if is_letter(c)]
    spaceless = sum(unicodedata.name(c, "").startswith(_SPACELESS_SCRIPTS) for c in letters)
    return spaceless * 2 > len(letters)


def text_units(text: str, characters: bool | None = None) -> list[str]:
    """Case-folded words without punctuation, or letters for texts without spaces (characters=None: guess)."""
    if characters is None:
        characters = _spaceless(text)
    if characters:
        return [c for c in text.casefold() if is_letter(c)]
    words = ("".join(c for c in word if is_letter(c)) for word in text.casefold().split())
    return [word for word in words if word]


def _loops(units: list[str], characters: bool) -> list[tuple[tuple[str, ...], int]]:
    """(n-gram, times in a row) of every run of MIN_REPEATS+ repeats in `units`."""
    max_ngram = MAX_CHARACTER_NGRAM if characters else MAX_NGRAM
    min_span = MIN_CHARACTER_SPAN if characters else 0
    found = []
    for n in range(1, max_ngram + 1):
        for start in range(len(units) - n * MIN_REPEATS + 1):
            gram = units[start : start + n]
            repeats = 1
            while units[start + repeats * n : start + (repeats + 1) * n] == gram:
                repeats += 1
            if repeats >= MIN_REPEATS and n * repeats >= min_span:
                found.append((tuple(gram), repeats))
    return found


def _longest_run(units: list[str], gram: tuple[str, ...]) -> int:
    """The most times `gram` stands in a row in `units` (0 when it is not there)."""
    n, best = len(gram), 0
    for start in range(len(units) - n + 1):
        repeats = 0
        while tuple(units[start + repeats * n : start + (repeats + 1) * n]) == gram:
            repeats += 1
        best = max(best, repeats)
    return best


def far_longer(hypothesis: list[str], reference: list[str], characters: bool) -> bool:
    """More than LENGTH_RATIO x the reference's units, plus a slack for short references."""
    slack = LENGTH_SLACK * (CHARACTERS_PER_WORD if characters else 1)
    return len(hypothesis) > LENGTH_RATIO * len(reference) + slack


def has_repetition_loop(text: str, reference: str | None = None) -> bool:
    """True when `text` repeats an n-gram MIN_REPEATS+ times in a row, or is far longer than `reference`.

    A repeat the reference itself has is speech, not a loop ("No, no, no, not that one." written as
    said): with a `reference`, a run counts only when it repeats its n-gram more times in a row
    than the reference does. `reference` None: every run counts. An empty reference ("" for no
    speech) makes any text over LENGTH_SLACK words a loop: the model went on and on over silence.
    """
    characters = _spaceless(text) or (reference is not None and _spaceless(reference))
    units = text_units(text, characters)
    reference_units = [] if reference is None else text_units(reference, characters)
    if any(repeats > _longest_run(reference_units, gram) for gram, repeats in _loops(units, characters)):
        return True
    return reference is not None and far_longer(units, reference_units, characters)
