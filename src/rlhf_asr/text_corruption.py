"""Synthetic rejected transcripts: one controlled edit of a reference (the `corruption` miner).

Used where the model makes no mistake to mine: the edit is a substitution, deletion or insertion
of a word (or a character for languages scored by CER) drawn from the manifest's own vocabulary,
so the rejected side looks like an ASR error rather than noise.
"""

from __future__ import annotations

import random
import string
import unicodedata

from rlhf_asr.evaluation.normalize import normalize_text, uses_cer

_PUNCTUATION = string.punctuation + "“”‘’«»¿¡…"


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN"


def _editable(unit: str, by_char: bool) -> bool:
    return _is_letter(unit) if by_char else any(_is_letter(ch) for ch in unit)


def reference_vocabulary(texts: list[str]) -> dict[str, list[str]]:
    """Words and non-Latin letters of the manifest's references, in first-seen order (deterministic)."""
    words = (word.strip(_PUNCTUATION) for text in texts for word in text.split())
    letters = dict.fromkeys(ch for text in texts for ch in text if _is_letter(ch) and ord(ch) > 0x2FF)
    return {"words": list(dict.fromkeys(word for word in words if word)), "chars": list(letters)}


def corrupt_text(text: str, language: str | None, rng: random.Random, vocabulary: dict[str, list[str]]) -> str:
    """`text` with one controlled edit (two from ten units on); differs from `text` once normalised.

    Edits words, or characters for CER languages (punctuation and spaces are left alone).
    """
    by_char = uses_cer(language)
    pool = vocabulary["chars" if by_char else "words"]
    joiner = "" if by_char else " "
    units = list(text) if by_char else text.split()
    editable = [i for i, unit in enumerate(units) if _editable(unit, by_char)] or [len(units) - 1]
    reference = normalize_text(text, language)
    for _ in range(10):
        result = list(units)
        for _ in range(1 if len(editable) < 10 else 2):
            _edit(result, rng, pool, by_char)
        candidate = joiner.join(result)
        if normalize_text(candidate, language) not in (reference, ""):
            return candidate
    # Repeating a unit always changes the text (and is a common ASR error too).
    index = editable[-1]
    return joiner.join(units[: index + 1] + units[index:])


def _edit(units: list[str], rng: random.Random, pool: list[str], by_char: bool) -> None:
    positions = [i for i, unit in enumerate(units) if _editable(unit, by_char)] or [len(units) - 1]
    i = rng.choice(positions)
    operation = rng.choice(("substitute", "delete", "insert") if len(positions) > 1 else ("substitute", "insert"))
    new = rng.choice([unit for unit in pool if unit != units[i]] or [units[i]])
    if operation == "substitute":
        units[i] = new
    elif operation == "delete":
        del units[i]
    else:
        units.insert(i + rng.randint(0, 1), new)
