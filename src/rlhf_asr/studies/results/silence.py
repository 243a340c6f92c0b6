"""Study: `rlhf-asr results --study silence`, does a trained model write nothing on non-speech where it is deployed?

The hallucination study's corpus and pairs (`hallucination.py`), scored under the decoders
users run rather than the study's own greedy decoding:
- `pipeline`: `transformers.pipeline("automatic-speech-recognition")` at its defaults on the merged
  folder (5 beams, the saved generation config). `rlhf-asr transcribe` decodes short clips the same
  way (tests/inference/test_decode.py), so it is not decoded twice.
- `fw_float32`, `fw_int8`: faster-whisper at its defaults (beam 5, thresholds, timestamps) on a
  float32 and an int8 `export-ct2` export.
- Long recordings (held-out speech, then 30 s or more of held-out non-speech, then speech): the
  share of files with any text timed inside the non-speech stretch, under `transcribe --timestamps`
  (`transcribe_long`, openai's defaults) and faster-whisper float32.
Variants: the base model, the base behind the decode-time guard (its own decoder), SFT and ORPO on
speech + no-speech pairs with each no-speech target (`--nospeech_target`), and speech-only ORPO.
Raw numbers go to silence_raw.json after every model; the report renders from it alone.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import soundfile

from rlhf_asr.data.audio import WHISPER_SAMPLING_RATE, load_audio
from rlhf_asr.data.text_rules import is_silent
from rlhf_asr.evaluation.deployed import export_faster_whisper, faster_whisper_texts, pipeline_texts
from rlhf_asr.evaluation.hallucination import nonspeech_rates, score_rows
from rlhf_asr.inference.guard import DecodeGuard
from rlhf_asr.studies.options import ORPO_ALPHA, ResultsOptions, training_args
from rlhf_asr.studies.results.hallucination import guarded_transcripts, save, study_start
from rlhf_asr.studies.results.report import environment
from rlhf_asr.studies.results.resume import earlier_runs
from rlhf_asr.studies.stages import pick_threads, timed_training

logger = logging.getLogger(__name__)
SPEECH_SPLITS = ("test", "test_voices")
# variant -> (alpha, pair file, --nospeech_target)
SILENCE_VARIANTS = {  # in the order they run within a seed (raw is saved after each)
    "orpo_eot": (ORPO_ALPHA, "mixed", "eot"),
    "orpo_nospeech": (ORPO_ALPHA, "mixed", "nospeech"),
    "sft_eot": (0.0, "mixed", "eot"),
    "orpo_speech": (ORPO_ALPHA, "speech", "eot"),
    "orpo_both": (ORPO_ALPHA, "mixed", "both"),
}
DECODERS = ("pipeline", "fw_float32", "fw_int8")
LONG_DECODERS = ("transcribe_long", "fw_float32")
LONG_FILES = 4


def long_recordings(corpus, folder: Path) -> list[dict]:
    """Held-out speech, two held-out non-speech clips, held-out speech: one file each, with the gap's span."""
    speech, gaps = corpus.splits["test_voices"], corpus.splits["nonspeech_test"]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(min(LONG_FILES, len(speech) // 2, len(gaps) // 2)):
        parts = [speech[2 * i], gaps[2 * i], gaps[2 * i + 1], speech[2 * i + 1]]
        audio = [load_audio(corpus.folder / u.path) for u in parts]
        start = len(audio[0]) / WHISPER_SAMPLING_RATE
        end = start + (len(audio[1]) + len(audio[2])) / WHISPER_SAMPLING_RATE
        path = folder / f"long{i}.wav"
        soundfile.write(path, np.concatenate(audio), WHISPER_SAMPLING_RATE)
        files.append({"path": str(path), "gap": (start, end), "text": f"{parts[0].text} {parts[3].text}"})
    return files


def gap_output(segments, gap: tuple[float, float]) -> bool:
    """Any text timed inside the non-speech stretch (a segment whose midpoint is in it, 0.5 s margins)."""
    return any(
        not is_silent(text) and gap[0] + 0.5 <= (start + end) / 2 <= gap[1] - 0.5 for start, end, text in segments
    )


def scores(corpus, transcripts: dict[str, list[str]]) -> dict:
    """Speech WER per held-out split; non-speech output and hallucination rates on held-out non-speech."""
    result = {
        f"wer_{split}": score_rows(corpus.texts(split), transcripts[split], "en")["wer"] for split in SPEECH_SPLITS
    }
    result.update(nonspeech_rates(transcripts["nonspeech_test"]))
    written = Counter(t if len(t) <= 60 else f"{t[:60]}... ({len(t)} chars)" for t in transcripts["nonspeech_test"])
    result["outputs"] = dict(written.most_common(8))  # what was written on non-speech ("" included), counted
    return result


def _paths(corpus, split: str) -> list[str]:
    return [str(corpus.folder / u.path) for u in corpus.splits[split]]


def pipeline_transcripts(folder: Path, corpus) -> dict[str, list[str]]:
    return {split: pipeline_texts(folder, _paths(corpus, split)) for split in (*SPEECH_SPLITS, "nonspeech_test")}


def fw_transcripts(fw, corpus) -> dict[str, list[str]]:
    return {split: faster_whisper_texts(fw, _paths(corpus, split)) for split in (*SPEECH_SPLITS, "nonspeech_test")}


def long_scores(decoded: list[list[tuple[float, float, str]]], files: list[dict]) -> dict:
    texts = [" ".join(t for _, _, t in segments) for segments in decoded]
    return {
        "gap_output_rate": sum(gap_output(s, f["gap"]) for s, f in zip(decoded, files)) / len(files),
        "wer_long": score_rows([f["text"] for f in files], texts, "en")["wer"],
    }


def long_transcribe(model_dir: Path, files) -> list:
    from rlhf_asr.inference.longform import transcribe_long
    from rlhf_asr.model.loading import load_for_inference

    model, processor = load_for_inference(model_dir)
    results = transcribe_long(model, processor, [load_audio(f["path"]) for f in files])
    return [[(s.start, s.end, s.text) for s in r.segments] for r in results]


def long_fw(fw, files) -> list:
    from rlhf_asr.evaluation.faster_whisper_eval import transcribe_segments

    return [[(s.start, s.end, s.text.strip()) for s in transcribe_segments(fw, load_audio(f["path"]))] for f in files]


def score_model(merged: Path, adapter: Path, corpus, files, work: Path) -> dict[str, dict]:
    """Per decoder, the held-out scores of one model (merged folder for the pipeline and the exports)."""
    pick_threads(2)
    out = {"pipeline": scores(corpus, pipeline_transcripts(merged, corpus))}
    fw32 = export_faster_whisper(merged, work / "ct2_float32", "float32")
    out["fw_float32"] = {
        **scores(corpus, fw_transcripts(fw32, corpus)),
        "long": long_scores(long_fw(fw32, files), files),
    }
    out["fw_int8"] = scores(corpus, fw_transcripts(export_faster_whisper(merged, work / "ct2_int8", "int8"), corpus))
    out["transcribe_long"] = {"long": long_scores(long_transcribe(adapter, files), files)}
    return out


def run_silence(options: ResultsOptions) -> dict:
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus, base, model, processor, _, _, pairs, mixed, _, cache, max_steps = study_start(
        options, out, "pairs_ns.jsonl"
    )
    files = long_recordings(corpus, out / "long")
    guard = DecodeGuard()
    guarded = guarded_transcripts(model, processor, corpus, guard)
    earlier = earlier_runs(options, "silence", redone=("guard",))  # the guard: one decoding pass, no training
    raw = {
        "study": "silence",
        "options": asdict(options),
        "pairs": {
            "speech": len(mixed) - sum(r["chosen"] == "" for _, r in mixed),
            "no_speech": sum(r["chosen"] == "" for _, r in mixed),
        },
        "max_steps": max_steps,
        "long_files": [{"gap_s": [round(x, 2) for x in f["gap"]]} for f in files],
        "planned_runs": 2 + len(options.seeds) * len(SILENCE_VARIANTS),
        "runs": earlier.get(("base", None))
        or [{"variant": "base", "seed": None, "decoders": score_model(base, base, corpus, files, out / "base")}],
        "environment": environment(),
    }
    raw["runs"].append({"variant": "guard", "seed": None, "decoders": {"guard": scores(corpus, guarded)}})
    save(raw, options)
    for seed in options.seeds:
        for variant, (alpha, pair_file, target) in SILENCE_VARIANTS.items():
            if (variant, seed) in earlier:  # measured by an earlier, interrupted run of the same study
                raw["runs"] += earlier[variant, seed]
                save(raw, options)
                continue
            run_dir = out / f"{variant}_seed{seed}"
            args = training_args(
                replace(options, alpha=alpha, seed=seed), base, pairs[pair_file], run_dir,
                max_steps=max_steps, plot=False, merge_at_end=True, overwrite_output_dir=True,
            )  # fmt: skip
            args[1].nospeech_target = target
            train_s = timed_training(args, cache)
            decoders = score_model(run_dir / "merged", run_dir, corpus, files, run_dir)
            raw["runs"].append({"variant": variant, "seed": seed, "train_s": round(train_s, 1), "decoders": decoders})
            logger.info("%s seed %s: %s", variant, seed, json.dumps(decoders)[:400])
            save(raw, options)
    return raw
