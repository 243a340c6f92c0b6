"""Pairs from transcripts already decoded, as the demo makes them (one greedy transcript per clip).

`mistake_rows`: the reference against a transcript with word errors (`is_mistake`). `loop_rows`:
the reference against a repetition loop of it, as `make-pairs --loop_pairs` writes them.
`no_speech_rows`: "" against anything written on a clip with nothing said. All three build their rows
with the same `preference_row`.
"""

from __future__ import annotations

import random

from rlhf_asr.data.text_rules import is_silent
from rlhf_asr.evaluation.metrics import error_rates
from rlhf_asr.pairs.corruption import loop_text, loopable
from rlhf_asr.pairs.rows import preference_row


def is_mistake(reference: str, hypothesis: str, language: str = "en") -> bool:
    """A non-empty transcript with word errors after normalisation: what becomes a preference pair."""
    return not is_silent(hypothesis) and error_rates([reference], [hypothesis], language)["word_errors"] > 0


def mistake_rows(
    audio_paths: list[str], durations: list[float], references: list[str], hypotheses: list[str]
) -> list[tuple[int, dict]]:
    """(index, preference row) for every English clip whose transcript `is_mistake`: chosen = reference,
    rejected = the transcript."""
    return [
        (index, preference_row(path, duration, reference, hypothesis, "English"))
        for index, (path, duration, reference, hypothesis) in enumerate(
            zip(audio_paths, durations, references, hypotheses)
        )
        if is_mistake(reference, hypothesis)
    ]


def loop_rows(
    audio_paths: list[str], durations: list[float], references: list[str], seed: int = 0
) -> list[tuple[int, dict]]:
    """(index, preference row) for every English clip: chosen = reference, rejected = a repetition loop
    of it (`loop_text`, seeded), as `make-pairs --loop_pairs` writes them (`Miner.loop_pair`)."""
    rng = random.Random(seed)
    return [
        (index, preference_row(path, duration, reference, loop_text(reference, "en", rng), "English", kind="loop"))
        for index, (path, duration, reference) in enumerate(zip(audio_paths, durations, references))
        if loopable(reference)
    ]


def no_speech_rows(audio_paths: list[str], durations: list[float], hypotheses: list[str]) -> list[tuple[int, dict]]:
    """(index, preference row) for every English clip with nothing said that the model wrote anything for
    (`is_silent` False): chosen "", rejected the transcript."""
    return [
        (index, preference_row(path, duration, "", hypothesis, "English"))
        for index, (path, duration, hypothesis) in enumerate(zip(audio_paths, durations, hypotheses))
        if not is_silent(hypothesis)
    ]
