"""What a transcript may contain, one rule for every reader (manifests, datasets, the review page).

A transcript is what the model learns to write. Characters no speech produces are refused, not
stripped: stripping would change the words a person typed or a pipeline wrote without saying so.
- C0 and C1 control characters (NUL, BEL, ESC, DEL, ...): a terminal escape or a binary field
  pasted into text. Tab, line feed and carriage return are whitespace and allowed.
- Bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069): they reorder what a person
  sees on the review page and in a terminal, so a transcript could read differently from what trains.
- Lone surrogates (U+D800-U+DFFF): not encodable as UTF-8; they cannot be written to a manifest.
- Other unassigned or private-use characters are kept: some scripts and tokenisers use them.

It also holds the text rules that mining and evaluation must read alike: what is silent
(`is_silent`), what a reference's kind is (`row_kind`) and what a letter is (`is_letter`).
"""

from __future__ import annotations

import unicodedata

SPEECH = "speech"
NO_SPEECH = "no_speech"

_ALLOWED_CONTROLS = frozenset("\t\n\r")
_BIDI_CONTROLS = frozenset(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be a transcript, or None when it can.

    The reason names the first offending character and its position, e.g.
    "holds a control character U+0007 at character 3".
    """
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            return f"holds a control character {_describe(char)} at character {position}"
        if char in _BIDI_CONTROLS:
            return f"holds a bidirectional override {_describe(char)} at character {position}"
        if category == "Cs":
            return f"holds a lone surrogate {_describe(char)} at character {position} (not valid UTF-8)"
    return None


def is_silent(text: str) -> bool:
    """The one definition of a silent transcript or output: nothing but whitespace. "." and "..." are
    output (a subtitle cue nobody asked for), so they are not silent, though they hold no word."""
    return not text.strip()


def row_kind(reference: str) -> str:
    """NO_SPEECH for a silent reference (`is_silent`: nothing was said), else SPEECH.

    Mining (which pair a clip makes) and evaluation (which rate a row counts in) both ask. The
    manifest and dataset readers refuse whitespace-only text as an error (a broken export, not a
    label), so the only silent reference that reaches either is "": on every row that can get
    here this rule and the stricter `reference == ""` agree.
    """
    return NO_SPEECH if is_silent(reference) else SPEECH


def is_letter(character: str) -> bool:
    """A letter, digit or mark (Unicode categories L*, N*, M*): what a word or a character unit is made of.

    Marks count: Thai vowel and tone marks (Mn) and Devanagari vowel signs (Mc) are written inside
    the syllable, so a word without them is another word, and a loop or an edit that skipped them
    would repeat or insert text that was never written. CJK characters are letters (Lo); digits
    are said, so they are units too. Punctuation, symbols and spaces are none.
    """
    return unicodedata.category(character)[0] in "LNM"
