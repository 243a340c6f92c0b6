"""Long-form WER on concatenated clips against the per-clip WER of the same sentences.

    python -m rlhf_asr.studies.bench.longform --files 5 --sentences 14 --output docs/benchmarks/longform_tiny_en.json

Each long file joins `--sentences` demo sentences (espeak-ng, one voice) with `--gap` seconds of
silence: about 60 s for 14 sentences. The same clips are also decoded one by one (short-form,
the model's generation config, as `evaluate` does), so the two WERs differ only by how the audio
reaches the model: Whisper's sequential long-form decoding (`inference.longform`, openai's
defaults: temperature fallback, condition on previous text, thresholds) versus one clip per
window. Long-form greedy without fallback is measured too, to show what the fallback does.
Temperatures above 0 sample: torch is seeded with `--seed` before each long-form run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from rlhf_asr.data.audio import WHISPER_SAMPLING_RATE, load_audio
from rlhf_asr.data.synth_audio import espeak_version, synthesize
from rlhf_asr.evaluation.metrics import error_rates
from rlhf_asr.evaluation.normalize import english_spelling_from
from rlhf_asr.inference.decode import transcribe_batch
from rlhf_asr.inference.longform import LongFormOptions, transcribe_long
from rlhf_asr.model.bundled import ensure_bundled_model
from rlhf_asr.studies.corpus import load_sentences

log = logging.getLogger(__name__)


def make_files(folder: Path, files: int, sentences: int, gap: float, seed: int, voice: str, speed: int):
    """([per file: clip arrays], [per file: texts], [per file: joined array])."""
    texts = load_sentences(files * sentences, seed=seed)
    clips, groups, joined = [], [], []
    silence = np.zeros(int(gap * WHISPER_SAMPLING_RATE), dtype=np.float32)
    for f in range(files):
        group = texts[f * sentences : (f + 1) * sentences]
        audio = []
        for i, text in enumerate(group):
            path = folder / f"{f}_{i}.wav"
            synthesize(text, path, voice=voice, speed=speed)
            audio.append(load_audio(path))
        clips.append(audio)
        groups.append(group)
        joined.append(np.concatenate([part for clip in audio for part in (clip, silence)]))
    return clips, groups, joined


def _wer(references, hypotheses, spelling) -> dict:
    rates = error_rates(references, hypotheses, "en", english_spelling=spelling)
    return {key: rates[key] for key in ("wer", "word_errors", "reference_words")}


def run(args) -> dict:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    folder = ensure_bundled_model(args.model)
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    spelling = english_spelling_from(processor)
    with tempfile.TemporaryDirectory() as tmp:
        clips, groups, joined = make_files(
            Path(tmp), args.files, args.sentences, args.gap, args.seed, args.voice, args.speed
        )
    references = [" ".join(group) for group in groups]
    result = {
        "command": "python -m rlhf_asr.studies.bench.longform " + " ".join(sys.argv[1:]),
        "model": args.model,
        "espeak_ng": espeak_version(),
        "torch_threads": torch.get_num_threads(),
        "file_seconds": [round(len(audio) / WHISPER_SAMPLING_RATE, 2) for audio in joined],
        "sentences_per_file": args.sentences,
    }

    started = time.perf_counter()
    flat = [clip for group in clips for clip in group]
    # greedy (num_beams=1), as the committed long-form benchmark was measured; the tool's default is 5 beams
    per_clip = transcribe_batch(model, processor, flat, batch_size=8, num_beams=1)
    clip_texts = [text for group in groups for text in group]
    result["per_clip"] = {**_wer(clip_texts, per_clip, spelling), "seconds": time.perf_counter() - started}

    variants = [("longform", LongFormOptions()), ("longform_greedy", LongFormOptions(temperature=[0.0]))]
    for name, options in variants:
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        outputs = transcribe_long(model, processor, joined, options=options, num_beams=1, batch_size=args.batch_size)
        hypotheses = [out.text for out in outputs]
        result[name] = {
            **_wer(references, hypotheses, spelling),
            "seconds": time.perf_counter() - started,
            "options": asdict(options),
            "per_file_wer": [_wer([r], [h], spelling)["wer"] for r, h in zip(references, hypotheses)],
            "hypotheses": hypotheses,
        }
        log.info("%s WER %.4f", name, result[name]["wer"])
    result["references"] = references
    result["per_clip_hypotheses"] = per_clip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en", help="bundled model name")
    parser.add_argument("--files", type=int, default=5, help="long files")
    parser.add_argument("--sentences", type=int, default=14, help="sentences per long file")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds of silence after each sentence")
    parser.add_argument("--seed", type=int, default=0, help="sentence choice and sampling seed")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice")
    parser.add_argument("--speed", type=int, default=160, help="espeak-ng words per minute")
    parser.add_argument("--batch_size", type=int, default=1, help="long files decoded at once")
    parser.add_argument("--output", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[rlhf-asr] %(message)s")
    result = run(args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("per-clip WER %.4f, long-form WER %.4f", result["per_clip"]["wer"], result["longform"]["wer"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
