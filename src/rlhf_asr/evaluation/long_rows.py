"""Evaluation rows longer than Whisper's 30 s window: decoded long-form, in manifest order.

A test set of whole recordings is what users have; rejecting its rows (as training must) would
leave nothing to score. Such rows go through `inference.longform` (Whisper's sequential decoding,
as `generate` and the ASR pipeline run it), the others through the one-window path, and the
rows come back in manifest order. The row's language, when neither the row nor the command gives
one, is detected from its first 30 s, as `generate` itself does. A long preference row gets a
WER but no preference scores: teacher-forced scoring hears one window, and the transcripts cover
more (`prefers_chosen` is left empty and the row does not count in preference accuracy).
"""

from __future__ import annotations

import time

from rlhf_asr.data.audio import WHISPER_MAX_SECONDS, load_audio
from rlhf_asr.inference.decode import encode_audio, resolve_languages
from rlhf_asr.inference.longform import LongFormOptions, transcribe_long


def is_long(example) -> bool:
    return example.duration > WHISPER_MAX_SECONDS


def evaluate_long_rows(model, processor, batch, kind, wanted, num_beams, options: LongFormOptions | None = None):
    """Rows (as `evaluate._evaluate_batch` makes them) for long examples, and the seconds spent decoding."""
    audios = [load_audio(example.audio_path) for example in batch]
    started = time.perf_counter()
    languages = resolve_languages(model, processor, encode_audio(model, processor, audios), wanted)
    results = transcribe_long(
        model, processor, audios, language=languages, options=options, num_beams=num_beams, batch_size=len(batch)
    )
    seconds = time.perf_counter() - started
    rows = []
    for example, language, result in zip(batch, languages, results):
        reference = example.reference
        row = {"source": example.where, "language": language, "reference": reference, "hypothesis": result.text}
        if kind == "preference":
            row.update(chosen_logprob=None, rejected_logprob=None, prefers_chosen=None)
        rows.append(row)
    return rows, seconds


def evaluate_in_order(evaluate_short, evaluate_long, batch, wanted) -> tuple[list[dict], float]:
    """Rows of `batch` in order: short examples through `evaluate_short`, long ones `evaluate_long`.

    Both take (examples, wanted languages) and return (rows, decode seconds).
    """
    parts = [[i for i, e in enumerate(batch) if not is_long(e)], [i for i, e in enumerate(batch) if is_long(e)]]
    rows: dict[int, dict] = {}
    seconds = 0.0
    for indices, evaluate in zip(parts, (evaluate_short, evaluate_long)):
        if indices:
            found, spent = evaluate([batch[i] for i in indices], [wanted[i] for i in indices])
            rows.update(zip(indices, found))
            seconds += spent
    return [rows[i] for i in range(len(batch))], seconds
