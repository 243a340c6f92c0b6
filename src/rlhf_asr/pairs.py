"""Mine preference pairs from an ASR manifest with a model's own mistakes (`rlhf-asr make-pairs`).

Preference data is rarely at hand, but transcribed audio is. For each utterance the model
decodes N candidates; the reference becomes `chosen` and a wrong candidate `rejected`. By
default the rejected one is the *hardest* negative: the wrong candidate the model itself finds
most probable (highest mean per-token log-prob), i.e. the mistake ORPO most needs to unlearn.
"worst" takes the candidate with the highest error rate, "random" any wrong one.

Utterances the model already gets right give no pair and are skipped, unless
`corrupt_correct`, which makes a rejected transcript by a seeded substitution, deletion,
insertion or repetition of words (characters for zh/ja/...), drawing new words from the
manifest's own references.

Every row written trains: both transcripts are checked with the training tokenisation against the
one length limit (`max_text_tokens`). A rejected transcript over it (a decoding that ran to the
limit, usually a repetition loop, re-tokenised a little longer) is cut to the limit and counted,
not dropped: such loops are Whisper's most typical failure and the mistake ORPO most needs to
unlearn, and the cut only shortens text the decoder had already cut off. A reference that cannot
train (too long, control tokens) skips its utterance, with a line naming the row.

The demo mines from transcripts it already has (`mistake_rows`): one greedy transcript per clip,
a pair wherever it is a non-empty transcript with word errors (`is_mistake`).

Runs are resumable: every processed utterance is listed, by manifest line, in
`<output>.progress` (pairs also carry their `source`), both flushed after each batch, and a
rerun skips what is listed, so edit the ASR manifest only between fresh runs (--no_resume).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rlhf_asr.data.audio import AudioError, load_audio
from rlhf_asr.data.manifest import read_asr_manifest
from rlhf_asr.data.tokens import (
    MAX_TARGET_TOKENS,
    TranscriptEncoder,
    TranscriptError,
    max_text_tokens,
    transcript_encoder,
)
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.metrics import error_rates, score_utterance
from rlhf_asr.evaluation.normalize import english_spelling_from
from rlhf_asr.inference.decode import (
    Candidate,
    check_language,
    decode_encoded,
    decoder_prefixes,
    encode_audio,
    resolve_languages,
)
from rlhf_asr.model.core import whisper_core
from rlhf_asr.text_corruption import corrupt_text, reference_vocabulary

logger = logging.getLogger(__name__)

STRATEGIES = ("beam", "sample")
NEGATIVES = ("hardest", "worst", "random")
CORRUPTION_NAME = "corruption"


def mine_pairs(
    model,
    processor,
    asr_manifest: str | Path,
    output_path: str | Path,
    *,
    num_candidates: int = 4,
    strategy: str = "beam",
    temperature: float = 0.7,
    negative: str = "hardest",
    corrupt_correct: bool = False,
    seed: int = 0,
    batch_size: int = 8,
    language: str | None = None,
    resume: bool = True,
    model_name: str | None = None,
    skip_invalid: bool = False,
    candidates_from=None,
) -> dict:
    """Write preference rows for `asr_manifest` to `output_path` (JSON lines); returns counts.

    `candidates_from(**decode_options)` returns the function that decodes a batch, (audios, wanted
    languages) -> (languages, candidates); None: `model` through `decode.py` (`hf_candidates`). The
    ct2 backend passes `partial(ct2_candidates, ct2_model)` (inference/ct2_decode.py), with `model`
    None and `model_name` given.
    """
    if strategy not in STRATEGIES:
        raise UserInputError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if negative not in NEGATIVES:
        raise UserInputError(f"negative must be one of {', '.join(NEGATIVES)}, not {negative!r}")
    if num_candidates < 1 or batch_size < 1:
        raise UserInputError("num_candidates and batch_size must be at least 1")
    language = check_language(processor, language)
    report = read_asr_manifest(
        asr_manifest, skip_invalid=skip_invalid, known_languages=transcript_encoder(processor).known_languages()
    )
    output = Path(output_path).expanduser()
    progress_path = output.with_name(output.name + ".progress")
    done = _prepare_outputs(output, progress_path, resume)
    todo = [example for example in report.examples if example.source not in done]
    torch.manual_seed(seed)
    miner = _Miner(
        processor,
        random.Random(seed),
        negative,
        corrupt_correct,
        model_name or getattr(whisper_core(model).config, "_name_or_path", "model"),
        output.parent.absolute(),
        reference_vocabulary([example.text for example in report.examples]),
        encoder=transcript_encoder(processor),
    )
    decode = dict(
        num_beams=num_candidates if strategy == "beam" else 1,
        num_return_sequences=num_candidates,
        do_sample=strategy == "sample",
        temperature=temperature if strategy == "sample" else None,
        score=True,
    )
    provide = (candidates_from or partial(hf_candidates, model, processor))(**decode)
    counts: Counter = Counter()
    # Row notes go through logging; the redirect keeps them from breaking the progress bar.
    with (
        open(output, "a", encoding="utf-8") as pair_file,
        open(progress_path, "a", encoding="utf-8") as progress,
        logging_redirect_tqdm(loggers=[logging.getLogger("rlhf_asr")]),
    ):
        for start in tqdm(range(0, len(todo), batch_size), desc="make-pairs", unit="batch"):
            batch, audios = [], []
            for example in todo[start : start + batch_size]:
                try:
                    audios.append(load_audio(example.audio_path))
                    batch.append(example)
                except AudioError as error:
                    logger.warning(f"{example.source}: {error}")
                    counts["errors"] += 1
            if not batch:
                continue
            languages, candidates = provide(audios, [language or e.language for e in batch])
            statuses = []
            for example, lang, found in zip(batch, languages, candidates):
                row, status = miner.pair(example, lang, found)
                counts[status] += 1
                statuses.append(json.dumps({"source": example.source, "status": status}) + "\n")
                if row is not None:
                    pair_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                    counts["truncated"] += bool(row.get("rejected_truncated"))
            pair_file.flush()  # pairs first: a row marked done always has its pair on disk
            progress.writelines(statuses)
            progress.flush()
    written = counts["mined"] + counts["corrupted"]
    if counts["truncated"]:
        logger.warning(f"make-pairs: {counts['truncated']} rejected transcript(s) cut to Whisper's length limit")
    if counts["skipped_reference"]:
        skipped = counts["skipped_reference"]
        logger.warning(f"make-pairs: {skipped} utterance(s) skipped: reference cannot be trained on")
    return {
        "written": written,
        "mined": counts["mined"],
        "corrupted": counts["corrupted"],
        "skipped_correct": counts["skipped_correct"],
        "skipped_empty": counts["skipped_empty"],
        "skipped_reference": counts["skipped_reference"],
        "truncated": counts["truncated"],
        "errors": counts["errors"],
        "already_done": len(report.examples) - len(todo),
        "rows": len(report.examples),
        "output": str(output),
    }


def hf_candidates(model, processor, **decode):
    """The batch decoder `mine_pairs` uses by default: encode once, resolve languages, decode with `model`."""

    def provide(audios, wanted):
        hidden = encode_audio(model, processor, audios)
        languages = resolve_languages(model, processor, hidden, wanted)
        return languages, decode_encoded(model, processor, hidden, decoder_prefixes(processor, languages), **decode)

    return provide


def is_mistake(reference: str, hypothesis: str, language: str = "en") -> bool:
    """A non-empty transcript with word errors after normalisation: what becomes a preference pair."""
    return bool(hypothesis.strip()) and error_rates([reference], [hypothesis], language)["word_errors"] > 0


def mistake_rows(
    audio_paths: list[str], durations: list[float], references: list[str], hypotheses: list[str]
) -> list[tuple[int, dict]]:
    """(index, preference row) for every English clip whose transcript `is_mistake`: chosen = reference,
    rejected = the transcript."""
    rows = []
    for index, (path, duration, reference, hypothesis) in enumerate(
        zip(audio_paths, durations, references, hypotheses)
    ):
        if is_mistake(reference, hypothesis):
            rows.append(
                (
                    index,
                    {
                        "audio": {"path": path},
                        "duration": round(duration, 3),
                        "chosen": reference,
                        "rejected": hypothesis,
                        "language": "English",
                    },
                )
            )
    return rows


def _prepare_outputs(output: Path, progress_path: Path, resume: bool) -> set[str]:
    """Sources already processed; starts both files afresh when not resuming."""
    if not resume:
        for path in (output, progress_path):
            path.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    for path in (output, progress_path):
        done |= _sources(path)
    return done


def _sources(path: Path) -> set[str]:
    """`source` of each complete row; a torn last line (killed mid-write) is cut off."""
    if not path.exists():
        return set()
    sources, good_bytes = set(), 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                row = json.loads(raw)
            except ValueError:
                break
            if not raw.endswith(b"\n"):
                break
            if isinstance(row, dict) and row.get("source"):
                sources.add(row["source"])
            good_bytes += len(raw)
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return sources


class _Miner:
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

    def pair(self, example, language: str, candidates: list[Candidate]) -> tuple[dict | None, str]:
        """(row or None, status): mined, corrupted, skipped_correct, skipped_empty or skipped_reference."""
        if self.encoder is not None:
            try:
                reference = self.encoder.encode(example.text, self._prompt_language(language))
            except TranscriptError as error:
                logger.warning(f"{example.source}: reference skipped: {error}")
                return None, "skipped_reference"
            if len(reference.ids) > MAX_TARGET_TOKENS:
                length = len(reference.ids)
                logger.warning(
                    f"{example.source}: reference skipped: {length} tokens, Whisper's limit is {MAX_TARGET_TOKENS}"
                )
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
        if scored:
            candidate, score = self._choose(scored)
            return self._row(example, language, candidate.text, score.rate, self.model_name, candidate.logprob), "mined"
        if not self.corrupt_correct:
            return None, "skipped_correct" if any_correct else "skipped_empty"
        rejected = corrupt_text(example.text, language, self.rng, self.vocabulary)
        score = score_utterance(example.text, rejected, language, english_spelling=self.spelling)
        return self._row(example, language, rejected, score.rate, CORRUPTION_NAME, None), "corrupted"

    def _choose(self, scored: list[tuple[Candidate, object]]):
        if self.negative == "random":
            return self.rng.choice(scored)
        if self.negative == "worst":
            return max(scored, key=lambda item: (item[1].rate, _logprob(item[0])))
        return max(scored, key=lambda item: _logprob(item[0]))

    def _prompt_language(self, language: str | None) -> str | None:
        return language if self.encoder is not None and self.encoder.multilingual else None

    def _fit(self, example, text: str, language: str | None) -> tuple[str, bool]:
        """`text`, cut to the length limit when its training tokens exceed it; (text, was_cut)."""
        if self.encoder is None:
            return text, False
        cut = fit_text(self.encoder, text, self._prompt_language(language))
        if cut == text:
            return text, False
        logger.warning(f"{example.source}: rejected transcript cut to Whisper's length limit (it ran to the limit)")
        return cut, True

    def _row(self, example, language, rejected, rate, rejected_by, logprob) -> dict:
        rejected, truncated = self._fit(example, rejected, language)
        if truncated:  # the rate of what is written; the log-prob stays the model's score of its whole output
            rate = score_utterance(example.text, rejected, language, english_spelling=self.spelling).rate
        row = {
            "audio": {"path": self._audio_path(example.audio_path)},
            "duration": round(example.duration, 3),
            "chosen": example.text,
            "rejected": rejected,
            "language": language,
            "rejected_wer": round(rate, 4),
            "rejected_by": rejected_by,
            "source": example.source,
        }
        if logprob is not None:
            row["rejected_logprob"] = round(logprob, 4)
        if truncated:
            row["rejected_truncated"] = True
        return row

    def _audio_path(self, path: Path) -> str:
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
