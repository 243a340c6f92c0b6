"""What users' own decoders write: `transformers.pipeline` and faster-whisper, each at its own defaults.

The reference for quality is what users run, not the tool's decoding: the pipeline on a model folder
(its 5 beams and the saved generation config, so a trained model's permission to end at once), and
faster-whisper on a CTranslate2 export (beam 5, its thresholds, conditioning on previous text).
`nonspeech_by_decoder` scores held-out non-speech clips under both, for a model before and after training.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rlhf_asr.data.audio import load_audio
from rlhf_asr.evaluation.hallucination import nonspeech_rates

# Clips per pipeline call. One: a clip that loops (a base model on noise) keeps every clip of its batch
# beam-searching to the 448-token limit, and beam search reorders a cache that grows with the batch, so
# one clip at a time is the faster way through a looping model's output. Batching changes no text.
PIPELINE_BATCH = 1
DEPLOYED_DECODERS = ("pipeline", "faster_whisper")


def pipeline_texts(folder: str | Path, paths: list[str], batch_size: int = PIPELINE_BATCH) -> list[str]:
    """`transformers.pipeline("automatic-speech-recognition")` at its defaults on a model folder."""
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(folder), device="cpu")
    return [out["text"].strip() for out in asr([load_audio(p) for p in paths], batch_size=batch_size)]


def export_faster_whisper(folder: str | Path, out: Path, quantization: str = "float32"):
    """faster-whisper's model on a fresh `export-ct2` export of a merged model folder."""
    from rlhf_asr.evaluation.faster_whisper_eval import faster_whisper_model
    from rlhf_asr.model.ct2_export import export_ct2

    if out.exists():
        shutil.rmtree(out)
    return faster_whisper_model(export_ct2(folder, out, quantization=quantization), device="cpu")


def faster_whisper_texts(fw, paths: list[str]) -> list[str]:
    """faster-whisper at its defaults, one clip at a time (its sampler seeded per clip)."""
    from rlhf_asr.evaluation.faster_whisper_eval import transcribe_clip

    return [transcribe_clip(fw, load_audio(p), None, None) for p in paths]


def nonspeech_by_decoder(folders: dict[str, str | Path], paths: list[str]) -> dict[str, dict[str, dict]]:
    """{decoder: {name: rates}} for each merged model folder in `folders` (e.g. before / after)."""
    result: dict[str, dict[str, dict]] = {decoder: {} for decoder in DEPLOYED_DECODERS}
    with tempfile.TemporaryDirectory(prefix="rlhf_asr_deployed_") as work:
        for name, folder in folders.items():
            result["pipeline"][name] = nonspeech_rates(pipeline_texts(folder, paths))
            fw = export_faster_whisper(folder, Path(work) / name)
            result["faster_whisper"][name] = nonspeech_rates(faster_whisper_texts(fw, paths))
            del fw
    return result
