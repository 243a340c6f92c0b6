"""Which transcript becomes `rejected` for one utterance, and the preference row it makes.

Three kinds of rows, each tagged in the row's `kind`:

- `speech`: chosen = the reference, rejected = a wrong candidate. A candidate with a repetition
  loop (`has_repetition_loop` against the reference) is taken first, even where another candidate
  is as wrong or more probable: loops are Whisper's most typical failure, and WER hides them on
  short references. A reference that itself repeats ("no no no") marks no candidate as a loop.
- `no_speech`: nothing was said (an empty reference). Any non-empty output is a mistake; chosen
  is "" and rejected the most probable non-empty candidate ("random": any). A model that stays
  silent gives no pair. WER means nothing here, so the row counts `rejected_words` instead.
- `padded`: a speech clip with silence or noise around it; mined as speech, so that the words the
  model adds on the padding are rejected with the rest of its mistakes.
- `loop` (`loop_pairs`): a speech clip's reference against itself running into a repetition loop
  (`loop_text`), whether or not the model erred. Greedy loops are rare and knife-edge, so a model's
  own n-best seldom holds one to mine; this pair teaches to stop where it would start one. Off by
  default: beside no-speech pairs they cost silence (docs/results/hallucination_runs.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from rlhf_asr.data.text_rules import NO_SPEECH, is_silent, row_kind
from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, TranscriptEncoder, TranscriptError, max_text_tokens
from rlhf_asr.evaluation.metrics import score_utterance
from rlhf_asr.evaluation.normalize import english_spelling_from
from rlhf_asr.evaluation.repetition import has_repetition_loop, text_units
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.pairs.corruption import corrupt_text, loop_text, loopable
from rlhf_asr.pairs.rows import preference_row

logger = logging.getLogger(__name__)

CORRUPTION_NAME = "corruption"  # `rejected_by` of a corrupted reference
LOOP_NAME = "loop"  # `rejected_by` of a loop pair


class Miner:
    """Chooses the rejected transcript of one utterance and builds its preference row."""

    def __init__(
        self,
        processor,
        rng,
        negative,
        corrupt_correct,
        model_name,
        output_dir: Path,
        vocabulary,
        encoder: TranscriptEncoder | None = None,
    ):
        self.spelling = english_spelling_from(processor)
        self.rng, self.negative, self.corrupt_correct = rng, negative, corrupt_correct
        self.model_name, self.output_dir, self.vocabulary = str(model_name), output_dir, vocabulary
        self.encoder = encoder  # None: rows are not length-checked (unit tests of the choice alone)

    def pair(
        self, example, language: str, candidates: list[Candidate], kind: str | None = None
    ) -> tuple[dict | None, str]:
        """(row or None, status): mined, corrupted, skipped_correct, skipped_empty or skipped_reference.

        `kind` None: `row_kind` of the reference ("padded" is only ever given).
        """
        kind = kind or row_kind(example.text)
        if kind == NO_SPEECH:
            return self._no_speech(example, language, candidates)
        if not self.reference_trains(example, language):
            return None, "skipped_reference"
        scored, seen, any_correct = [], set(), False
        for candidate in candidates:
            score = score_utterance(example.text, candidate.text, language, english_spelling=self.spelling)
            if not score.hypothesis_norm:  # empty output: not a usable transcript
                continue
            if score.errors == 0:
                any_correct = True
            elif score.hypothesis_norm not in seen:
                seen.add(score.hypothesis_norm)
                scored.append((candidate, score))
        loops = [] if has_repetition_loop(example.text) else [
            item for item in scored if has_repetition_loop(item[0].text, example.text)
        ]  # fmt: skip
        if scored:
            candidate, score = self._choose(loops or scored)
            row = self._row(example, language, candidate.text, score.rate, self.model_name, candidate.logprob, kind)
            if loops:
                row["rejected_loop"] = True
            return row, "mined"
        if not self.corrupt_correct:
            return None, "skipped_correct" if any_correct else "skipped_empty"
        rejected = corrupt_text(example.text, language, self.rng, self.vocabulary)
        score = score_utterance(example.text, rejected, language, english_spelling=self.spelling)
        return self._row(example, language, rejected, score.rate, CORRUPTION_NAME, None, kind), "corrupted"

    def loop_pair(self, example, language: str) -> dict | None:
        """The `loop` row of a speech clip: chosen = the reference, rejected = `loop_text` of it.
        None for a reference that has no word to loop or itself repeats ("no no no")."""
        if not loopable(example.text):
            return None
        rejected = loop_text(example.text, language, self.rng)
        score = score_utterance(example.text, rejected, language, english_spelling=self.spelling)
        row = self._row(example, language, rejected, score.rate, LOOP_NAME, None, "loop")
        row["rejected_loop"] = True
        return row

    def _no_speech(self, example, language: str, candidates: list[Candidate]) -> tuple[dict | None, str]:
        """Any output over non-speech (`is_silent` False: "." too, as the metrics count it) is rejected;
        a silent model gives no pair."""
        spoken = list({c.text.strip(): c for c in reversed(candidates) if not is_silent(c.text)}.values())[::-1]
        if not spoken:
            return None, "skipped_correct"
        if self.negative == "random":
            candidate = self.rng.choice(spoken)
        else:
            candidate = max(spoken, key=_logprob)
        text, name = candidate.text.strip(), self.model_name
        row = self._row(example, language, text, None, name, candidate.logprob, NO_SPEECH)
        row["rejected_words"] = len(text_units(row["rejected"]))
        if has_repetition_loop(row["rejected"], ""):
            row["rejected_loop"] = True
        return row, "mined"

    def _choose(self, scored: list[tuple[Candidate, object]]):
        if self.negative == "random":
            return self.rng.choice(scored)
        if self.negative == "worst":
            return max(scored, key=lambda item: (item[1].rate, _logprob(item[0])))
        return max(scored, key=lambda item: _logprob(item[0]))

    def reference_trains(self, example, language: str | None) -> bool:
        """The reference encodes within Whisper's length limit (always, without an encoder); else a
        line naming the row, and the utterance is skipped ("skipped_reference")."""
        if self.encoder is None:
            return True
        try:
            reference = self.encoder.encode(example.text, self._prompt_language(language))
        except TranscriptError as error:
            logger.warning(f"{example.where}: reference skipped: {error}")
            return False
        if len(reference.ids) > MAX_TARGET_TOKENS:
            length = len(reference.ids)
            logger.warning(
                f"{example.where}: reference skipped: {length} tokens, Whisper's limit is {MAX_TARGET_TOKENS}"
            )
            return False
        return True

    def _prompt_language(self, language: str | None) -> str | None:
        return language if self.encoder is not None and self.encoder.multilingual else None

    def fit(self, example, text: str, language: str | None, what: str = "rejected transcript") -> tuple[str, bool]:
        """`text`, cut to the length limit when its training tokens exceed it; (text, was_cut)."""
        if self.encoder is None:
            return text, False
        cut = fit_text(self.encoder, text, self._prompt_language(language))
        if cut == text:
            return text, False
        logger.warning(f"{example.where}: {what} cut to Whisper's length limit (it ran to the limit)")
        return cut, True

    def _row(self, example, language, rejected, rate, rejected_by, logprob, kind) -> dict:
        rejected, truncated = self.fit(example, rejected, language)
        # the rate of what is written; the log-prob stays the model's score of its whole output
        if truncated and rate is not None:
            rate = score_utterance(example.text, rejected, language, english_spelling=self.spelling).rate
        path = self.audio_path(example.audio_path)
        row = preference_row(
            path, example.duration, example.text, rejected, language, wer=rate, logprob=logprob,
            kind=kind, rejected_by=rejected_by, source=example.where,
        )  # fmt: skip
        if truncated:
            row["rejected_truncated"] = True
        return row

    def audio_path(self, path: Path) -> str:
        """Relative to the output's folder when the audio lies under it, else absolute."""
        path = Path(path).absolute()
        try:
            return path.relative_to(self.output_dir).as_posix()
        except ValueError:
            return str(path)


def fit_text(encoder: TranscriptEncoder, text: str, language: str | None) -> str:
    """`text`, or its longest token prefix whose training sequence fits `max_text_tokens`.

    Decoding and re-encoding a token prefix can tokenise differently (and a cut inside a multi-byte
    character decodes to U+FFFD, dropped here), so the cut is re-checked until it fits.
    """
    limit = max_text_tokens(len(encoder.prefix(language)))
    ids = encoder.text_ids(text)
    if len(ids) <= limit:
        return text
    for keep in range(limit, 0, -1):
        cut = encoder.tokenizer.decode(ids[:keep]).rstrip("\ufffd").strip()
        if len(encoder.text_ids(cut)) <= limit:
            return cut
    return ""


def _logprob(candidate: Candidate) -> float:
    return candidate.logprob if candidate.logprob is not None else float("-inf")
