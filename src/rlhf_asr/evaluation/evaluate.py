"""Score a model on a manifest: WER/CER, and for preference data, preference accuracy.

One command for both manifest kinds so the same held-out preference file used for training
diagnostics can also give a WER: for a preference row the reference is `chosen`. Preference
accuracy is the share of rows where the model gives the chosen transcript a higher mean
per-token log-prob than the rejected one, the quantity ORPO pushes up; both transcripts are
scored on the audio's one encoder pass. A K-best manifest (make-pairs --nbest) is scored against
its `reference`, with no preference accuracy. Rates use normalised text (see `normalize`).

Rows with an empty reference ("sentence": "" or "chosen": "") are no-speech clips: they give the
hallucination rate, and WER/CER are taken on the speech rows alone (see `hallucination`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from pathlib import Path

from tqdm import tqdm

from rlhf_asr.data.audio import load_audio
from rlhf_asr.data.manifest import SHOWN_PROBLEMS
from rlhf_asr.data.options import DataSource, as_source
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.data.sources import data_kind, read_data
from rlhf_asr.data.tokens import transcript_encoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.hallucination import score_rows
from rlhf_asr.evaluation.long_rows import evaluate_in_order, evaluate_long_rows
from rlhf_asr.evaluation.normalize import english_spelling_from, uses_cer
from rlhf_asr.inference.decode import (
    check_language,
    decode_encoded,
    decoder_prefixes,
    default_num_beams,
    encode_audio,
    resolve_languages,
    score_texts,
)
from rlhf_asr.model.core import whisper_core

log = logging.getLogger(__name__)

CSV_FIELDS = [
    "source",
    "kind",
    "language",
    "reference",
    "hypothesis",
    "reference_norm",
    "hypothesis_norm",
    "errors",
    "words",
    "loop",
    "chosen_logprob",
    "rejected_logprob",
    "prefers_chosen",
]


# From `hallucination_metrics`: rates (None where their rows are missing) and their counts.
HALLUCINATION_KEYS = (
    "hallucination_rate",
    "nonspeech_output_rate",
    "insertion_rate",
    "repetition_rate",
    "rows_speech",
    "rows_no_speech",
    "hallucinated_rows",
    "nonspeech_output_rows",
    "inserted_words",
    "loop_rows",
)


def manifest_kind(path: str | Path) -> str:
    """'preference' when the first row has `chosen` and `rejected`, 'kbest' when it has `reference`
    and `candidates` (make-pairs --nbest: scored against the reference, no preference accuracy), else 'asr'.

    Only the first row is peeked at; the reader then validates every row for its kind.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig").lstrip()
        if text.startswith("["):
            rows = json.loads(text)
            first = rows[0] if rows else {}
        else:
            first = json.loads(next(line for line in text.splitlines() if line.strip()))
    except (OSError, ValueError, RecursionError, StopIteration, IndexError):
        return "asr"  # the reader reports what is wrong with the file
    if not isinstance(first, dict):
        return "asr"
    if "chosen" in first and "rejected" in first:
        return "preference"
    return "kbest" if "reference" in first and "candidates" in first else "asr"


def evaluate_manifest(
    model,
    processor,
    manifest_path: str | Path | DataSource,
    *,
    language: str | None = None,
    default_language: str | None = None,
    num_beams: int | None = None,
    batch_size: int = 8,
    output_dir: str | Path | None = None,
    max_rows: int | None = None,
    model_name: str | None = None,
    skip_invalid: bool = False,
    metrics_name: str = "metrics.json",
    long_form=None,
) -> dict:
    """Decode every row, score it, and (with output_dir) write metrics.json and utterances.csv.

    `language` overrides the rows' own languages. Otherwise each row is decoded in its own
    language; rows without one take `default_language`, or else are auto-detected by a
    multilingual model. Rows longer than Whisper's 30 s window are decoded long-form
    (`long_rows`, with `long_form`: LongFormOptions, None: openai's defaults). `manifest_path` may
    also be a dataset (data/sources.py).
    """
    # None: the pipeline's rule (the generation config's beams, else 5) for rows within 30 s; long
    # rows keep the generation config's (inference/longform.py says why).
    given_beams, num_beams = num_beams, num_beams or default_num_beams(whisper_core(model).generation_config)
    language = check_language(processor, language)
    default_language = check_language(processor, default_language)
    kind, report, examples = read_for_evaluation(manifest_path, processor, skip_invalid, max_rows, long_audio=True)
    rows: list[dict] = []
    decode_seconds = 0.0
    with tqdm(total=len(examples), desc="evaluate", unit="utt") as progress:
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            wanted = [language or example.language or default_language for example in batch]
            batch_rows, seconds = evaluate_in_order(
                lambda part, langs: _evaluate_batch(model, processor, part, kind, langs, num_beams),
                lambda part, langs: evaluate_long_rows(model, processor, part, kind, langs, given_beams, long_form),
                batch,
                wanted,
            )
            rows += batch_rows
            decode_seconds += seconds
            progress.update(len(batch))
    metrics = _summary(rows, examples, report, kind, processor, language, num_beams, decode_seconds)
    metrics["manifest"] = as_source(manifest_path).location
    metrics["model"] = model_name or getattr(whisper_core(model).config, "_name_or_path", None)
    if output_dir is not None:
        write_outputs(Path(output_dir), metrics, rows, metrics_name)
    return metrics


def read_for_evaluation(manifest_path, processor, skip_invalid: bool, max_rows: int | None, long_audio: bool):
    """(kind, report, the examples to score) of a manifest or dataset, every row checked.

    `long_audio`: rows over 30 s are valid (decoded long-form), else invalid rows.
    """
    source = as_source(manifest_path)
    kind = data_kind(source) or manifest_kind(source.location)
    checks = RowChecks(
        min_duration=0.0,
        skip_invalid=skip_invalid,
        known_languages=transcript_encoder(processor).known_languages(),
        kbest_rows=kind == "kbest",
        **({"long_audio": True, "max_duration": math.inf} if long_audio else {}),
    )
    report = read_data(source, "asr" if kind == "asr" else "preference", checks)
    say_skipped(report)
    return kind, report, report.examples[:max_rows] if max_rows else report.examples


def say_skipped(report) -> None:
    """How many rows --skip_invalid_rows left out and why, on stderr (metrics.json only counts them)."""
    if not report.skipped:
        return
    log.warning(report.summary())
    for problem in report.skipped[:SHOWN_PROBLEMS]:
        log.warning(f"  skipped {problem}")
    if len(report.skipped) > SHOWN_PROBLEMS:
        log.warning(f"  ... and {len(report.skipped) - SHOWN_PROBLEMS} more")


def _evaluate_batch(model, processor, batch, kind, wanted, num_beams) -> tuple[list[dict], float]:
    """Rows for one batch and the seconds spent decoding it (encoder + generation, not scoring).

    `wanted`: per row, the language to decode in, or None to detect it.
    """
    audios = [load_audio(example.audio_path) for example in batch]
    started = time.perf_counter()
    hidden = encode_audio(model, processor, audios)
    languages = resolve_languages(model, processor, hidden, wanted)
    prefixes = decoder_prefixes(processor, languages)
    hypotheses = [c[0].text for c in decode_encoded(model, processor, hidden, prefixes, num_beams=num_beams)]
    seconds = time.perf_counter() - started
    rows = []
    for example, lang, hypothesis in zip(batch, languages, hypotheses):
        reference = example.reference
        rows.append({"source": example.where, "language": lang, "reference": reference, "hypothesis": hypothesis})
    if kind == "preference":
        owners = list(range(len(batch)))
        scores = preference_scores(
            model, processor, hidden, owners, prefixes, [e.chosen for e in batch], [e.rejected for e in batch]
        )
        for row, (chosen, rejected) in zip(rows, scores):
            row.update(chosen_logprob=chosen, rejected_logprob=rejected, prefers_chosen=chosen > rejected)
    return rows, seconds


def preference_scores(
    model, processor, hidden, owners: list[int], prefixes: list[list[int]], chosen: list[str], rejected: list[str]
) -> list[tuple[float, float]]:
    """(chosen, rejected) mean per-token log-probs of each pair given its audio `hidden[owners[i]]`.

    Both transcripts of a batch are scored in one decoder pass over the audio's one encoder output.
    """
    scores = score_texts(model, processor, hidden, owners + owners, prefixes, list(chosen) + list(rejected))
    return list(zip(scores[: len(owners)], scores[len(owners) :]))


def preference_accuracy(
    model,
    processor,
    hidden,
    owners: list[int],
    prefixes: list[list[int]],
    chosen: list[str],
    rejected: list[str],
    batch_size: int = 16,
) -> float | None:
    """Share of pairs where the model gives `chosen` the higher mean log-prob; None without pairs.

    That is the quantity ORPO pushes up.
    """
    if not owners:
        return None
    wins = 0
    for start in range(0, len(owners), batch_size):
        part = slice(start, start + batch_size)
        scores = preference_scores(model, processor, hidden, owners[part], prefixes, chosen[part], rejected[part])
        wins += sum(c > r for c, r in scores)
    return wins / len(owners)


def _summary(rows, examples, report, kind, processor, language, num_beams, decode_seconds) -> dict:
    languages = [row["language"] for row in rows]
    rates = score_rows(
        [row["reference"] for row in rows],
        [row["hypothesis"] for row in rows],
        languages,
        english_spelling=english_spelling_from(processor),
    )
    for row, score in zip(rows, rates["utterances"]):
        row.update(
            {key: score[key] for key in ("kind", "reference_norm", "hypothesis_norm", "errors", "words", "loop")}
        )
    audio_seconds = sum(example.duration for example in examples)
    distinct = sorted(set(languages))
    preference = [row["prefers_chosen"] for row in rows if row.get("prefers_chosen") is not None]
    return {
        "wer": rates["wer"],
        "cer": rates["cer"],
        "primary_metric": "cer" if languages and all(uses_cer(lang) for lang in languages) else "wer",
        "preference_accuracy": sum(preference) / len(preference) if preference else None,
        "num_utterances": len(rows),
        "num_skipped": len(report.skipped),
        "audio_seconds": audio_seconds,
        "decode_seconds": decode_seconds,
        "rtf": decode_seconds / audio_seconds if audio_seconds else None,
        "language": language or (distinct[0] if len(distinct) == 1 else "mixed"),
        "num_beams": num_beams,
        "manifest_type": kind,
        **{key: rates[key] for key in ("word_errors", "reference_words", "char_errors", "reference_chars")},
        **{key: rates[key] for key in HALLUCINATION_KEYS},
    }


def write_outputs(
    output_dir: Path,
    metrics: dict,
    rows: list[dict],
    metrics_name: str = "metrics.json",
    fields: list[str] = CSV_FIELDS,
) -> None:
    """metrics.json (or `metrics_name`) and utterances.csv (columns `fields`) in `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / metrics_name).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(output_dir / "utterances.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def check_output(path: str) -> Path:
    """--output must be writable as a file; checked before decoding, which may take hours."""
    output = Path(path).expanduser()
    if output.is_dir():
        raise UserInputError(f"--output {path}: is a folder; give a file path such as {output / 'metrics.json'}")
    for parent in (output.parent, *output.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UserInputError(f"--output {path}: {parent} is a file, not a folder")
            break
    if (output.parent / "utterances.csv").is_dir():
        raise UserInputError(f"--output {path}: {output.parent / 'utterances.csv'} is a folder")
    return output
