"""Does a model keep its accuracy once converted to CTranslate2? Both backends on the same clips.

Users of fine-tuned Whisper often find the CTranslate2 (faster-whisper) conversion transcribes
worse than the model they trained, and nothing tells them. `evaluate --backend ct2` answers it:
each batch is decoded by the Hugging Face model and by its CTranslate2 conversion with the same
prompt tokens (the languages the HF path resolves), the same beam width (the generation
config's) and the same length limit, and both are scored with the same normalisation as
`evaluate_manifest` (WER on speech rows; no-speech rows give the hallucination rates, for both
backends). Reported: the CT2 model's WER/CER as `wer`/`cer`, the HF model's as
`hf_wer`/`hf_cer`, their difference (`wer_difference` = CT2 - HF, so positive means the
conversion lost accuracy) and how many transcripts differ at all. Preference accuracy is a
teacher-forced score of the HF model, not of a decoding backend, so it is left to `--backend hf`.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from rlhf_asr.data.audio import load_audio
from rlhf_asr.data.options import as_source
from rlhf_asr.evaluation.evaluate import HALLUCINATION_KEYS, read_for_evaluation, write_outputs
from rlhf_asr.evaluation.hallucination import score_rows
from rlhf_asr.evaluation.normalize import english_spelling_from
from rlhf_asr.inference.ct2_decode import CT2Whisper, decode_ct2, encode_ct2
from rlhf_asr.inference.decode import (
    check_language,
    decode_encoded,
    decoder_prefixes,
    default_num_beams,
    encode_audio,
    resolve_languages,
)
from rlhf_asr.model.core import whisper_core

CSV_FIELDS = [
    *("source", "kind", "language", "reference", "hypothesis", "hf_hypothesis", "same"),
    *("errors", "hf_errors", "words", "loop", "hf_loop"),
]


def compare_backends(
    model,
    processor,
    manifest_path,  # a manifest path, or a dataset (data/sources.py)
    *,
    ct2: CT2Whisper,
    language: str | None = None,
    num_beams: int | None = None,
    batch_size: int = 8,
    max_rows: int | None = None,
    skip_invalid: bool = False,
    output_dir: str | Path | None = None,
    metrics_name: str = "metrics.json",
    model_name: str | None = None,
) -> dict:
    """Metrics of both backends on every row of `manifest_path` (see the module doc); writes
    metrics.json and utterances.csv (both hypotheses per row) with `output_dir`."""
    num_beams = num_beams or default_num_beams(whisper_core(model).generation_config)
    language = check_language(processor, language)
    # Rows over 30 s are invalid here: the CTranslate2 path decodes one window per clip.
    kind, report, examples = read_for_evaluation(manifest_path, processor, skip_invalid, max_rows, long_audio=False)
    rows: list[dict] = []
    seconds = {"hf": 0.0, "ct2": 0.0}
    for start in tqdm(range(0, len(examples), batch_size), desc="evaluate (hf + ct2)", unit="batch"):
        batch = examples[start : start + batch_size]
        audios = [load_audio(example.audio_path) for example in batch]
        started = time.perf_counter()
        hidden = encode_audio(model, processor, audios)
        languages = resolve_languages(model, processor, hidden, [language or e.language for e in batch])
        prefixes = decoder_prefixes(processor, languages)
        hf = [row[0].text for row in decode_encoded(model, processor, hidden, prefixes, num_beams=num_beams)]
        seconds["hf"] += time.perf_counter() - started
        started = time.perf_counter()
        ct2_rows = decode_ct2(ct2, encode_ct2(ct2, audios), prefixes, num_beams=num_beams)
        seconds["ct2"] += time.perf_counter() - started
        for example, lang, hf_text, ct2_row in zip(batch, languages, hf, ct2_rows):
            reference = example.reference
            rows.append(
                {"source": example.where, "language": lang, "reference": reference}
                | {"hypothesis": ct2_row[0].text, "hf_hypothesis": hf_text}
            )
    metrics = _summary(rows, examples, report, processor, seconds)
    metrics |= {
        "num_beams": num_beams,
        "manifest_type": kind,
        "manifest": as_source(manifest_path).location,
        "model": model_name,
        "ct2_model": ct2.path,
        "ct2_compute_type": ct2.compute_type,
        "language": language or (rows[0]["language"] if len({r["language"] for r in rows}) == 1 else "mixed"),
    }
    if output_dir is not None:
        write_outputs(Path(output_dir), metrics, rows, metrics_name, CSV_FIELDS)
    return metrics


def _summary(rows: list[dict], examples, report, processor, seconds: dict) -> dict:
    spelling = english_spelling_from(processor)
    references, languages = [r["reference"] for r in rows], [r["language"] for r in rows]
    # as `evaluate --backend hf` scores: WER on speech rows, no-speech rows in the hallucination rates
    ct2 = score_rows(references, [r["hypothesis"] for r in rows], languages, english_spelling=spelling)
    hf = score_rows(references, [r["hf_hypothesis"] for r in rows], languages, english_spelling=spelling)
    for row, mine, theirs in zip(rows, ct2["utterances"], hf["utterances"]):
        row.update(errors=mine["errors"], hf_errors=theirs["errors"], words=mine["words"])
        row.update(kind=mine["kind"], loop=mine["loop"], hf_loop=theirs["loop"])
        row["same"] = row["hypothesis"] == row["hf_hypothesis"]
    audio_seconds = sum(example.duration for example in examples)

    def difference(key):
        return None if ct2[key] is None or hf[key] is None else ct2[key] - hf[key]

    return {
        "backend": "ct2",
        "wer": ct2["wer"],
        "cer": ct2["cer"],
        "hf_wer": hf["wer"],
        "hf_cer": hf["cer"],
        "wer_difference": difference("wer"),
        "cer_difference": difference("cer"),
        "transcripts_differing": sum(not row["same"] for row in rows),
        "preference_accuracy": None,
        "num_utterances": len(rows),
        "num_skipped": len(report.skipped),
        "audio_seconds": audio_seconds,
        "decode_seconds": seconds["ct2"],
        "hf_decode_seconds": seconds["hf"],
        "rtf": seconds["ct2"] / audio_seconds if audio_seconds else None,
        "hf_rtf": seconds["hf"] / audio_seconds if audio_seconds else None,
        **{f"hf_{key}": hf[key] for key in ("word_errors", "reference_words")},
        **{key: ct2[key] for key in ("word_errors", "reference_words", "char_errors", "reference_chars")},
        **{key: ct2[key] for key in HALLUCINATION_KEYS},
        **{f"hf_{key}": hf[key] for key in HALLUCINATION_KEYS if key.endswith("_rate")},
    }
