"""Word and character error rates on normalised text (jiwer alignments).

Rates are corpus-level: total edits over total reference units, as in the Whisper paper, so a
two-word utterance cannot swing the score like a fifty-word one. Per utterance, `errors` and
`words` are counted in the language's scoring unit: words, or characters (spaces ignored) for
the CER languages, where the primary metric is CER. An empty reference scores every hypothesis
unit as an insertion; rates with zero reference units are None rather than a division by zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import jiwer

from rlhf_asr.evaluation.normalize import normalize_text, uses_cer


@dataclass(frozen=True)
class UtteranceScore:
    reference_norm: str
    hypothesis_norm: str
    word_errors: int
    ref_words: int
    char_errors: int
    ref_chars: int
    cer_unit: bool  # True when this utterance is scored by characters
    word_insertions: int = 0  # hypothesis words with no reference word (the insertion rate's numerator)

    @property
    def errors(self) -> int:
        return self.char_errors if self.cer_unit else self.word_errors

    @property
    def words(self) -> int:
        """Reference length in the scoring unit."""
        return self.ref_chars if self.cer_unit else self.ref_words

    @property
    def rate(self) -> float:
        """Error rate of this utterance; with an empty reference, the number of insertions."""
        return self.errors / self.words if self.words else float(self.errors)

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors, "words": self.words, "rate": self.rate}


def score_utterance(
    reference: str, hypothesis: str, language: str | None = None, *, english_spelling: Mapping | None = None
) -> UtteranceScore:
    """Normalise both texts and count word and character edits."""
    ref = normalize_text(reference, language, english_spelling=english_spelling)
    hyp = normalize_text(hypothesis, language, english_spelling=english_spelling)
    cer_unit = uses_cer(language)
    word_errors, ref_words, insertions = _edits(ref.split(), hyp.split(), jiwer.process_words, " ")
    # Character languages ignore spaces (segmentation is not an error); others keep them, as jiwer's CER.
    ref_c, hyp_c = (ref.replace(" ", ""), hyp.replace(" ", "")) if cer_unit else (ref, hyp)
    char_errors, ref_chars, _ = _edits(list(ref_c), list(hyp_c), jiwer.process_characters, "")
    return UtteranceScore(ref, hyp, word_errors, ref_words, char_errors, ref_chars, cer_unit, insertions)


def _edits(ref_units: list[str], hyp_units: list[str], process, joiner: str) -> tuple[int, int, int]:
    """(substitutions + deletions + insertions, reference length, insertions)."""
    if not ref_units:
        return len(hyp_units), 0, len(hyp_units)
    if not hyp_units:
        return len(ref_units), len(ref_units), 0
    out = process(joiner.join(ref_units), joiner.join(hyp_units))
    return out.substitutions + out.deletions + out.insertions, len(ref_units), out.insertions


def error_rates(
    references: Sequence[str],
    hypotheses: Sequence[str],
    language: str | None | Sequence[str | None] = None,
    *,
    english_spelling: Mapping | None = None,
) -> dict:
    """Corpus WER and CER plus per-utterance scores.

    `language` is one code for all rows or one per row (mixed-language manifests).
    Returns {"wer", "cer", "word_errors", "reference_words", "char_errors", "reference_chars",
    "utterances": [UtteranceScore.as_dict(), ...]}.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    languages = [language] * len(references) if language is None or isinstance(language, str) else list(language)
    if len(languages) != len(references):
        raise ValueError(f"{len(languages)} languages for {len(references)} references")
    scores = [
        score_utterance(r, h, lang, english_spelling=english_spelling)
        for r, h, lang in zip(references, hypotheses, languages)
    ]
    utterances = [s.as_dict() for s in scores]
    return {**corpus_rates(utterances), "utterances": utterances}


def corpus_rates(utterances: Sequence[Mapping]) -> dict:
    """Corpus WER and CER with their totals, from `UtteranceScore.as_dict()` rows (any subset of them)."""
    totals = {
        "word_errors": sum(u["word_errors"] for u in utterances),
        "reference_words": sum(u["ref_words"] for u in utterances),
        "char_errors": sum(u["char_errors"] for u in utterances),
        "reference_chars": sum(u["ref_chars"] for u in utterances),
    }
    return {
        "wer": _ratio(totals["word_errors"], totals["reference_words"]),
        "cer": _ratio(totals["char_errors"], totals["reference_chars"]),
        **totals,
    }


def _ratio(errors: int, total: int) -> float | None:
    return errors / total if total else None
