"""`rlhf-asr bench --mining`: clips per second of N-best mining, Hugging Face vs CTranslate2.

Mining (`make-pairs`) decodes every clip of an ASR manifest into N beam-search candidates, and it
is the slow part of making preference data. This measures exactly that path on the same clips
and the same N for each backend: `pairs.hf_candidates` (encode, beam search, teacher-forced
scores) and `ct2_decode.ct2_candidates` at each quantization (encode, beam search; CTranslate2
returns scores with the search). Both run on the same threads; the model is exported before
timing, and one batch is decoded first as warm-up. Every backend's top candidates are compared
with the HF ones (`top1_agreement`): a speed-up that changed the output would not be one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from rlhf_asr.data.audio import load_audio
from rlhf_asr.data.manifest import read_asr_manifest

log = logging.getLogger(__name__)


def _timed(provide, audios: list, batch_size: int) -> tuple[float, list]:
    """(seconds, candidates) of decoding all `audios` in batches; the first batch is a warm-up, untimed."""
    provide(audios[:batch_size], [None] * min(batch_size, len(audios)))
    found: list = []
    started = time.perf_counter()
    for start in range(0, len(audios), batch_size):
        chunk = audios[start : start + batch_size]
        found += provide(chunk, [None] * len(chunk))[1]
    return time.perf_counter() - started, found


def measure_mining(
    model: str,
    manifest: str | Path,
    scratch: str | Path,
    *,
    num_candidates: int = 4,
    clips: int = 16,
    batch_size: int = 8,
    quantizations: tuple[str, ...] = ("int8", "float32"),
    threads: int | None = None,
) -> dict:
    """Mining speed of `model` on the first `clips` rows of `manifest`, HF and CT2 (exported into `scratch`)."""
    from rlhf_asr.inference.ct2_decode import ct2_candidates, load_ct2_whisper
    from rlhf_asr.model.ct2_export import export_ct2
    from rlhf_asr.model.loading import load_for_inference
    from rlhf_asr.pairs import hf_candidates

    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    examples = read_asr_manifest(manifest).examples[:clips]
    audios = [load_audio(example.audio_path) for example in examples]
    seconds_audio = sum(example.duration for example in examples)
    decode = dict(num_beams=num_candidates, num_return_sequences=num_candidates)
    hf_model, processor = load_for_inference(model)
    seconds, hf_found = _timed(hf_candidates(hf_model, processor, score=True, **decode), audios, batch_size)
    results = {"hf": _result(seconds, hf_found, hf_found, seconds_audio)}
    del hf_model
    for quantization in quantizations:
        folder = Path(scratch) / f"ct2-{quantization}"
        if not (folder / "model.bin").is_file():
            export_ct2(model, folder, quantization)
        ct2 = load_ct2_whisper(folder, threads=threads, processor=processor)
        seconds, found = _timed(ct2_candidates(ct2, **decode), audios, batch_size)
        results[f"ct2_{quantization}"] = _result(seconds, found, hf_found, seconds_audio)
        results[f"ct2_{quantization}"]["speedup_vs_hf"] = results["hf"]["seconds"] / seconds
    config = dict(model=model, manifest=str(manifest), clips=len(audios), audio_seconds=seconds_audio)
    config |= dict(num_candidates=num_candidates, batch_size=batch_size, threads=threads)
    return {"config": config, "results": results}


def _result(seconds: float, found: list, reference: list, audio_seconds: float) -> dict:
    same = sum(a[0].text == b[0].text for a, b in zip(found, reference))
    same_lists = sum([c.text for c in a] == [c.text for c in b] for a, b in zip(found, reference))
    return {
        "seconds": seconds,
        "clips_per_second": len(found) / seconds,
        "rtf": seconds / audio_seconds,
        "top1_agreement": same / len(found),
        "nbest_list_agreement": same_lists / len(found),
    }


def mining_table(report: dict) -> str:
    lines = ["| backend | clips/s | x hf | RTF | top-1 = hf | n-best list = hf |", "|---|---|---|---|---|---|"]
    for name, result in report["results"].items():
        top1, lists = 100 * result["top1_agreement"], 100 * result["nbest_list_agreement"]
        lines.append(
            f"| {name} | {result['clips_per_second']:.2f} | {result.get('speedup_vs_hf', 1.0):.2f} | "
            f"{result['rtf']:.3f} | {top1:.0f}% | {lists:.0f}% |"
        )
    return "\n".join(lines)
