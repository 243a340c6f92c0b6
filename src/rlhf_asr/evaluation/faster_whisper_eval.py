"""What faster-whisper users get: `evaluate --backend faster-whisper` on a CTranslate2 export.

`evaluate --backend ct2` decodes the export the way the Hugging Face path does, to check the
conversion. Users of an export deploy it with faster-whisper, whose `WhisperModel.transcribe`
has defaults of its own: beam 5, openai's temperature fallback and no-speech / log-prob
thresholds, text conditioned on the previous window, timestamps on. Here each clip goes through
that call with those defaults (only `language` and, when given, `beam_size` are passed), the
segments' texts are joined, and the rows are scored exactly as `evaluate --backend hf` scores
them: WER/CER on speech rows, the hallucination, non-speech output, insertion and repetition
rates on the rest (evaluation/hallucination.py).
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

from tqdm import tqdm

from rlhf_asr.data.audio import load_audio
from rlhf_asr.data.options import as_source
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.evaluate import HALLUCINATION_KEYS, read_for_evaluation, write_outputs
from rlhf_asr.evaluation.hallucination import score_rows
from rlhf_asr.evaluation.normalize import english_spelling_from

CSV_FIELDS = ["source", "kind", "language", "reference", "hypothesis", "errors", "words", "loop"]


def faster_whisper_model(folder: str | Path, *, device: str | None = None, compute_type: str = "default"):
    """faster-whisper's `WhisperModel` on an export-ct2 folder (one line when the package is missing)."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise UserInputError(
            "--backend faster-whisper needs the faster-whisper package: pip install faster-whisper"
        ) from None
    return WhisperModel(str(folder), device=device or "auto", compute_type=compute_type)


def default_beam_size(model) -> int:
    """faster-whisper's own default beam, read from its `transcribe` (5 in every release so far)."""
    return inspect.signature(type(model).transcribe).parameters["beam_size"].default


# faster-whisper's temperature fallback samples (CTranslate2's generator): seeded per clip, so a
# row's text does not depend on the rows before it and a rerun writes the same text.
SEED = 0


def transcribe_segments(model, audio, language: str | None = None, beam_size: int | None = None, seed: int = SEED):
    """One clip's segments as faster-whisper writes them, with its own defaults, decoded now (a list)."""
    import ctranslate2

    options = {} if beam_size is None else {"beam_size": beam_size}
    ctranslate2.set_random_seed(seed)
    segments, _ = model.transcribe(audio, language=language, **options)
    return list(segments)  # a generator: decoding happens here


def transcribe_clip(model, audio, language: str | None, beam_size: int | None, seed: int = SEED) -> str:
    """One clip's text as faster-whisper writes it: its segments joined, with its own defaults."""
    return "".join(segment.text for segment in transcribe_segments(model, audio, language, beam_size, seed)).strip()


def evaluate_faster_whisper(
    fw_model,
    processor,
    manifest_path,  # a manifest path, or a dataset (data/sources.py)
    *,
    folder: str | Path,
    language: str | None = None,
    num_beams: int | None = None,
    max_rows: int | None = None,
    skip_invalid: bool = False,
    output_dir: str | Path | None = None,
    metrics_name: str = "metrics.json",
    model_name: str | None = None,
    **_ignored,  # batch_size: faster-whisper decodes one clip at a time
) -> dict:
    """Metrics of faster-whisper on every row (see the module doc); metrics.json and utterances.csv
    with `output_dir`. `num_beams` None: faster-whisper's own default (5)."""
    kind, report, examples = read_for_evaluation(manifest_path, processor, skip_invalid, max_rows, long_audio=True)
    multilingual = fw_model.model.is_multilingual
    rows, seconds = [], 0.0
    for example in tqdm(examples, desc="evaluate (faster-whisper)", unit="utt"):
        audio = load_audio(example.audio_path)
        wanted = (language or example.language) if multilingual else None
        started = time.perf_counter()
        text = transcribe_clip(fw_model, audio, wanted, num_beams)
        seconds += time.perf_counter() - started
        reference = example.reference
        rows.append({"source": example.where, "language": wanted or "en", "reference": reference, "hypothesis": text})
    references, languages = [r["reference"] for r in rows], [r["language"] for r in rows]
    rates = score_rows(
        references, [r["hypothesis"] for r in rows], languages, english_spelling=english_spelling_from(processor)
    )
    for row, score in zip(rows, rates["utterances"]):
        row.update({key: score[key] for key in ("kind", "errors", "words", "loop")})
    audio_seconds = sum(example.duration for example in examples)
    metrics = {
        "backend": "faster-whisper",
        "wer": rates["wer"],
        "cer": rates["cer"],
        "preference_accuracy": None,  # a teacher-forced score of the HF model: --backend hf
        "num_utterances": len(rows),
        "num_skipped": len(report.skipped),
        "audio_seconds": audio_seconds,
        "decode_seconds": seconds,
        "rtf": seconds / audio_seconds if audio_seconds else None,
        "num_beams": num_beams or default_beam_size(fw_model),
        "manifest_type": kind,
        "manifest": as_source(manifest_path).location,
        "model": model_name,
        "ct2_model": str(folder),
        "language": language or (languages[0] if len(set(languages)) == 1 else "mixed"),
        **{key: rates[key] for key in ("word_errors", "reference_words", "char_errors", "reference_chars")},
        **{key: rates[key] for key in HALLUCINATION_KEYS},
    }
    if output_dir is not None:
        write_outputs(Path(output_dir), metrics, rows, metrics_name, CSV_FIELDS)
    return metrics
