"""Hallucination metrics: words written over no speech, inserted words, repetition loops.

What Whisper's users report most is text that was never said: words on silence, noise or music,
and loops ("and and and ..."). WER cannot show the first (a no-speech clip has no reference
words to divide by) and hides both inside one number, so they are counted on their own:

- `hallucination_rate`: share of no-speech rows (reference "") where the model wrote at least one
  word after Whisper's normalisation (punctuation and fillers such as "hmm" or "(music)" are not);
  None when there are no such rows, since 0 would claim a measurement that was never made;
- `nonspeech_output_rate`: share of no-speech rows where the model wrote anything at all
  (`is_silent` is False: "." and "..." count), the stricter one and what a user of the deployed
  model sees; the silence targets are judged on it;
- `insertion_rate`: inserted words over reference words, on speech rows (words added that were
  not said, the hallucination inside speech);
- `repetition_rate`: share of all outputs with a repetition loop (`has_repetition_loop`). Speech
  rows pass their reference, so an output far longer than it counts too; no-speech rows pass none,
  since on silence any length is already a hallucination and only real repeats make a loop.

WER and CER are then taken on speech rows only, so adding no-speech rows to a test set leaves
the speech score comparable with one measured without them. For outputs on English no-speech clips
alone (every reference ""), `nonspeech_rates`, `hallucination_rate` and `repetition_rate` are the
same scores in one call each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# row_kind (SPEECH or NO_SPEECH) is the one mining uses too: one rule for what a reference's kind is
from rlhf_asr.data.text_rules import NO_SPEECH, SPEECH, is_silent, row_kind
from rlhf_asr.evaluation.metrics import corpus_rates, error_rates
from rlhf_asr.evaluation.repetition import has_repetition_loop


@dataclass(frozen=True)
class RowOutcome:
    """What one decoded row contributes to the hallucination metrics."""

    kind: str  # SPEECH or NO_SPEECH
    words_written: int  # words of the normalised hypothesis
    word_insertions: int  # hypothesis words with no reference word
    reference_words: int  # words of the normalised reference (0 for no speech)
    loop: bool  # has_repetition_loop
    any_output: bool = False  # not is_silent(hypothesis): anything written, punctuation included


def written_words(normalized: str) -> int:
    """Words of a normalised text; a token with no letter or digit (the normaliser keeps "..." as ".") is none."""
    return sum(any(c.isalnum() for c in token) for token in normalized.split())


def hallucination_metrics(outcomes: Sequence[RowOutcome]) -> dict:
    """Rates (None where their rows are missing) and the counts they are made of."""
    speech = [o for o in outcomes if o.kind == SPEECH]
    silent = [o for o in outcomes if o.kind == NO_SPEECH]
    hallucinated = sum(o.words_written > 0 for o in silent)
    output = sum(o.any_output for o in silent)
    inserted = sum(o.word_insertions for o in speech)
    loops = sum(o.loop for o in outcomes)
    return {
        "hallucination_rate": _ratio(hallucinated, len(silent)),
        "nonspeech_output_rate": _ratio(output, len(silent)),
        "insertion_rate": _ratio(inserted, sum(o.reference_words for o in speech)),
        "repetition_rate": _ratio(loops, len(outcomes)),
        "rows_speech": len(speech),
        "rows_no_speech": len(silent),
        "hallucinated_rows": hallucinated,
        "nonspeech_output_rows": output,
        "inserted_words": inserted,
        "loop_rows": loops,
    }


def score_rows(
    references: Sequence[str],
    hypotheses: Sequence[str],
    language: str | None | Sequence[str | None] = None,
    *,
    english_spelling: Mapping | None = None,
) -> dict:
    """WER/CER on speech rows and the hallucination metrics, from references ("" = no speech).

    Returns `corpus_rates` over the speech rows, `hallucination_metrics`, and "utterances": one
    `UtteranceScore.as_dict()` per row (all rows) with its "kind" and "loop" added.
    """
    rates = error_rates(references, hypotheses, language, english_spelling=english_spelling)
    utterances, outcomes = rates["utterances"], []
    for reference, hypothesis, utterance in zip(references, hypotheses, utterances):
        kind = row_kind(reference)
        loop = has_repetition_loop(hypothesis, reference if kind == SPEECH else None)
        utterance.update(kind=kind, loop=loop)
        words = written_words(utterance["hypothesis_norm"])
        outcomes.append(
            RowOutcome(
                kind, words, utterance["word_insertions"], utterance["ref_words"], loop, not is_silent(hypothesis)
            )
        )
    speech = [u for u in utterances if u["kind"] == SPEECH]
    return {**corpus_rates(speech), **hallucination_metrics(outcomes), "utterances": utterances}


def nonspeech_rates(texts: Sequence[str]) -> dict:
    """Non-speech output rate (any text, "." included) and hallucination rate (words) of no-speech clips."""
    rates = score_rows([""] * len(texts), texts, "en")
    return {key: rates[key] for key in ("nonspeech_output_rate", "hallucination_rate")}


def hallucination_rate(hypotheses: Sequence[str]) -> float | None:
    """Share of non-speech outputs with at least one word (`evaluate`'s definition); None without clips."""
    return nonspeech_rates(hypotheses)["hallucination_rate"] if hypotheses else None


def repetition_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float | None:
    """Share of outputs with a repetition loop (`evaluate`'s definition: "" references count real repeats only)."""
    return score_rows(references, hypotheses, "en")["repetition_rate"] if hypotheses else None


def _ratio(count: int, total: int) -> float | None:
    return count / total if total else None
