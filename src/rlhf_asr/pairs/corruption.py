"""Synthetic rejected transcripts: one controlled edit of a reference (the `corruption` miner), or
the reference running into a repetition loop (loop pairs).

Used where the model makes no mistake to mine: the edit is a substitution, deletion or insertion
of a word (or a character for languages scored by CER) drawn from the manifest's own vocabulary,
so the rejected side looks like an ASR error rather than noise. Units are made of letters as
`data/text_rules.is_letter` says, the rule the repetition metric counts with.
"""

from __future__ import annotations

import random
import string

from rlhf_asr.data.text_rules import is_letter
from rlhf_asr.evaluation.normalize import normalize_text, uses_cer
from rlhf_asr.evaluation.repetition import has_repetition_loop

_PUNCTUATION = string.punctuation + "“”‘’«»¿¡…"


def _editable(unit: str, by_char: bool) -> bool:
    return is_letter(unit) if by_char else any(is_letter(ch) for ch in unit)


def reference_vocabulary(texts: list[str]) -> dict[str, list[str]]:
    """Words and non-Latin letters of the manifest's references, in first-seen order (deterministic)."""
    words = (word.strip(_PUNCTUATION) for text in texts for word in text.split())
    letters = dict.fromkeys(ch for text in texts for ch in text if is_letter(ch) and ord(ch) > 0x2FF)
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


LOOP_REPEATS = 6  # copies of the looped n-gram: twice `has_repetition_loop`'s threshold
LOOP_MAX_NGRAM = 3  # units; Whisper's loops are mostly a word or a short phrase


def loopable(text: str) -> bool:
    """True when `loop_text` can loop `text`: it has a word (a letter) and does not itself repeat ("no no no")."""
    return any(is_letter(ch) for ch in text) and not has_repetition_loop(text)


def loop_text(text: str, language: str | None, rng: random.Random) -> str:
    """`text` cut after a random unit, then its last 1-3 units repeated: a synthetic repetition loop.

    Whisper's loops start anywhere ("An an an ...", "in your future in your future ..."), so the
    cut point and the n-gram are drawn at random; repeats after the first are written mid-sentence
    (first letter lower-cased, end punctuation dropped) as the decoder writes them. Units are words,
    or characters for languages scored by CER. The result always `has_repetition_loop`.
    """
    by_char = uses_cer(language)
    joiner = "" if by_char else " "
    units = list(text) if by_char else text.split()
    positions = [i for i, unit in enumerate(units) if _editable(unit, by_char)]
    if not positions:
        raise ValueError(f"no words to loop in {text!r}")
    cut = rng.randint(1, len(positions))  # units kept, counting words (characters) only
    size = rng.randint(1, min(LOOP_MAX_NGRAM, cut))
    head = units[: positions[cut - size]]  # the reference up to the looped n-gram, as written
    gram = [units[i].strip(_PUNCTUATION) or units[i] for i in positions[cut - size : cut]]
    repeat = list(gram)
    if not by_char and not head and repeat[0] != "I" and not repeat[0].isupper():
        repeat[0] = repeat[0][:1].lower() + repeat[0][1:]  # a sentence's first word, written mid-sentence
    return joiner.join(head + gram + repeat * (LOOP_REPEATS - 1))
