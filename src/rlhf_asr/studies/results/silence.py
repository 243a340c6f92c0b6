"""Study: `rlhf-asr results --study silence`, does a trained model write nothing on non-speech where it is deployed?

The hallucination study's corpus and pairs (`hallucination.py`), scored under the decoders
users run rather than the study's own greedy decoding:
- `pipeline`: `transformers.pipeline("automatic-speech-recognition")` at its defaults on the merged
  folder (5 beams, the saved generation config). `rlhf-asr transcribe` decodes short clips the same
  way (tests/inference/test_decode.py), so it is not decoded twice.
- `fw_float32`, `fw_int8`: faster-whisper at its defaults (beam 5, thresholds, timestamps) on a
  float32 and an int8 `export-ct2` export.
- Long recordings (held-out speech, then 30 s or more of held-out non-speech, then speech), under
  `transcribe --timestamps` (`transcribe_long`, openai's defaults) and faster-whisper float32: the
  share of files with a segment of text inside the non-speech stretch, the words inserted over the
  reference (hallucinated words anywhere, also those glued to real speech) and the WER. The
  segments are kept in the raw file.
- Speech after a pause (`AFTER_PAUSE`: each held-out voice clip after 15 s of held-out non-speech),
  under the same three short-form decoders: WER and the share of clips with no output at all (a
  model that learnt "non-speech at the start: write nothing" stops before the speech).
Variants: the base model, the base behind the decode-time guard (its own decoder), SFT and ORPO on
speech + no-speech pairs with each no-speech target (`--nospeech_target`), ORPO with the speech
also padded with non-speech around it (`padded_pairs`, as `make-pairs --pad_silence`), and
speech-only ORPO.
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
from rlhf_asr.studies.nonspeech import add_after_pause, add_padded
from rlhf_asr.studies.options import ResultsOptions, training_args
from rlhf_asr.studies.results.hallucination import guarded_transcripts, save, study_start
from rlhf_asr.studies.results.report import environment, measured_at
from rlhf_asr.studies.results.resume import earlier_runs
from rlhf_asr.studies.stages import (
    cpu_cores,
    decode_split,
    encode_clips,
    make_split_pairs,
    pick_threads,
    timed_training,
)

logger = logging.getLogger(__name__)
SPEECH_SPLITS = ("test", "test_voices")
AFTER_PAUSE = "test_voices_after_pause"  # held-out voices after 15 s of held-out non-speech (add_after_pause)
SCORED_SPLITS = (*SPEECH_SPLITS, AFTER_PAUSE, "nonspeech_test")
# variant -> (--loss, pair file, --nospeech_target), in the order they run, each over every seed (raw is
# saved after each run): the recipe and the same without padding first (the recipe's --pad_silence rests
# on that pair), then its SFT and speech-only comparisons, then the other no-speech targets
SILENCE_VARIANTS = {
    "orpo_eot_padded": ("orpo", "mixed_padded", "eot"),  # + speech padded with non-speech (padded_pairs)
    "orpo_eot": ("orpo", "mixed", "eot"),
    "sft_eot_padded": ("sft", "mixed_padded", "eot"),
    "orpo_speech": ("orpo", "speech", "eot"),
    "orpo_nospeech": ("orpo", "mixed", "nospeech"),
    "orpo_both": ("orpo", "mixed", "both"),
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


GAP_MARGIN = 0.5  # seconds: timestamps are rounded to 20 ms and drift; a segment may lean this far out of the gap


def gap_output(segments, gap: tuple[float, float]) -> bool:
    """Any segment of text that lies inside the non-speech stretch (within `GAP_MARGIN` of its ends).

    Not a segment's midpoint: Whisper times a window's first segment from the window's start (its
    first timestamp is at most 1 s in, `max_initial_timestamp`), so the speech after a long gap,
    decoded in a window that starts inside the gap, is timed from there. Such a segment runs past the
    gap's end and is the real speech; its hallucinated words, if any, count in `insertion_rate_long`.
    """
    return any(
        not is_silent(text) and start >= gap[0] - GAP_MARGIN and end <= gap[1] + GAP_MARGIN
        for start, end, text in segments
    )


def scores(corpus, transcripts: dict[str, list[str]]) -> dict:
    """Speech WER per held-out split; non-speech output and hallucination rates on held-out non-speech."""
    result = {
        f"wer_{split}": score_rows(corpus.texts(split), transcripts[split], "en")["wer"] for split in SPEECH_SPLITS
    }
    result.update(nonspeech_rates(transcripts["nonspeech_test"]))
    if AFTER_PAUSE in transcripts:
        result.update(pause_scores(corpus, transcripts[AFTER_PAUSE]))
    written = Counter(t if len(t) <= 60 else f"{t[:60]}... ({len(t)} chars)" for t in transcripts["nonspeech_test"])
    result["outputs"] = dict(written.most_common(8))  # what was written on non-speech ("" included), counted
    return result


def pause_scores(corpus, texts: list[str]) -> dict:
    """WER of held-out speech after a long pause, and the share of those clips with no output at all."""
    return {
        "wer_after_pause": score_rows(corpus.texts(AFTER_PAUSE), texts, "en")["wer"],
        "no_output_after_pause": sum(is_silent(text) for text in texts) / len(texts),
    }


def rescore_after_pause(run: dict, merged: Path, work: Path, corpus) -> None:
    """A run measured before the after-pause clips existed gets their scores under its three decoders
    (the merged folder for the pipeline, the exports in `work` for faster-whisper)."""
    decoders = run["decoders"]
    if "pipeline" not in decoders or "wer_after_pause" in decoders["pipeline"]:
        return  # the guard's run (its own decoder), or measured already
    from rlhf_asr.evaluation.faster_whisper_eval import faster_whisper_model

    logger.info("%s seed %s: the after-pause clips scored", run["variant"], run["seed"])
    pick_threads(2)
    paths = _paths(corpus, AFTER_PAUSE)
    decoders["pipeline"].update(pause_scores(corpus, pipeline_texts(merged, paths)))
    for decoder, folder in (("fw_float32", "ct2_float32"), ("fw_int8", "ct2_int8")):
        fw = faster_whisper_model(work / folder, device="cpu")
        decoders[decoder].update(pause_scores(corpus, faster_whisper_texts(fw, paths)))


def _paths(corpus, split: str) -> list[str]:
    return [str(corpus.folder / u.path) for u in corpus.splits[split]]


def pipeline_transcripts(folder: Path, corpus) -> dict[str, list[str]]:
    return {split: pipeline_texts(folder, _paths(corpus, split)) for split in SCORED_SPLITS}


def fw_transcripts(fw, corpus) -> dict[str, list[str]]:
    return {split: faster_whisper_texts(fw, _paths(corpus, split)) for split in SCORED_SPLITS}


def long_scores(decoded: list[list[tuple[float, float, str]]], files: list[dict]) -> dict:
    texts = [" ".join(t for _, _, t in segments) for segments in decoded]
    rates = score_rows([f["text"] for f in files], texts, "en")
    return {
        "gap_output_rate": sum(gap_output(s, f["gap"]) for s, f in zip(decoded, files)) / len(files),
        "insertion_rate_long": rates["insertion_rate"],
        "wer_long": rates["wer"],
        "segments": [[(round(a, 2), round(b, 2), text) for a, b, text in s] for s in decoded],
    }


def long_decoders(adapter: Path, fw32, files) -> dict[str, dict]:
    """The long recordings' scores under both long-form decoders (the adapter's folder, a float32 export)."""
    return {
        "fw_float32": long_scores(long_fw(fw32, files), files),
        "transcribe_long": long_scores(long_transcribe(adapter, files), files),
    }


def rescore_long(run: dict, adapter: Path, fw32_dir: Path, files) -> None:
    """A run measured before the long recordings kept their segments gets them (and today's gap rule)."""
    if "segments" in run["decoders"].get("transcribe_long", {}).get("long", {}):
        return
    from rlhf_asr.evaluation.faster_whisper_eval import faster_whisper_model

    logger.info("%s seed %s: the long recordings scored again (segments kept)", run["variant"], run["seed"])
    long = long_decoders(adapter, faster_whisper_model(fw32_dir, device="cpu"), files)
    run["decoders"]["fw_float32"]["long"] = long["fw_float32"]
    run["decoders"]["transcribe_long"] = {"long": long["transcribe_long"]}


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
    long = long_decoders(adapter, fw32, files)
    out["fw_float32"] = {**scores(corpus, fw_transcripts(fw32, corpus)), "long": long["fw_float32"]}
    out["fw_int8"] = scores(corpus, fw_transcripts(export_faster_whisper(merged, work / "ct2_int8", "int8"), corpus))
    out["transcribe_long"] = {"long": long["transcribe_long"]}
    return out


def padded_pairs(start, options: ResultsOptions) -> tuple[Path, list]:
    """The mixed pairs plus those of the training speech padded with up to 25 s of training non-speech
    around it (`add_padded`): the base model's mistakes on them, chosen the reference. They teach that
    a window which starts with non-speech may still hold speech."""
    corpus, _, model, processor, hidden, before = start[:6]
    split = add_padded(corpus)
    paths = [corpus.folder / u.path for u in corpus.splits[split]]
    hidden[split] = encode_clips(model, processor, paths, workers=cpu_cores())
    pick_threads(1)
    before[split] = decode_split(model, processor, hidden, corpus, split, options.decode_batch_size)
    splits = ("train", "nonspeech_train", split)
    path, found, _ = make_split_pairs(corpus, splits, before, hidden, model, "pairs_ns_padded.jsonl", start.cache)
    return path, found


def variant_args(
    options: ResultsOptions, base: Path, pairs: Path, run_dir: Path, max_steps: int, target: str, loss: str
):
    """(ModelArguments, DataArguments, PreferenceConfig) of one trained variant: the studies' run with the
    objective `loss` and the no-speech target `target`, merged at the end (the pipeline and the exports
    read the merged folder)."""
    model_args, data_args, config = training_args(
        options,
        base,
        pairs,
        run_dir,
        loss=loss,
        max_steps=max_steps,
        plot=False,
        merge_at_end=True,
        overwrite_output_dir=True,
    )
    return model_args, replace(data_args, nospeech_target=target), config  # DataArguments is frozen


def run_silence(options: ResultsOptions) -> dict:
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = study_start(options, out, "pairs_ns.jsonl")
    corpus, base, model, processor, _, _, pairs, mixed, _, cache, max_steps = start
    pairs["mixed_padded"], with_padded = padded_pairs(start, options)
    files = long_recordings(corpus, out / "long")
    add_after_pause(corpus)
    earlier = earlier_runs(options, "silence")
    raw = {
        "study": "silence",
        "options": asdict(options),
        "pairs": {
            "speech": len(mixed) - sum(r["chosen"] == "" for _, r in mixed),
            "no_speech": sum(r["chosen"] == "" for _, r in mixed),
            "padded": len(with_padded) - len(mixed),  # in mixed_padded, beside all of mixed
        },
        "max_steps": max_steps,
        "long_files": [{"gap_s": [round(x, 2) for x in f["gap"]]} for f in files],
        "planned_runs": 2 + len(options.seeds) * len(SILENCE_VARIANTS),
        "runs": earlier.get(("base", None))
        or [{"variant": "base", "seed": None, "decoders": score_model(base, base, corpus, files, out / "base")}],
        "environment": environment(),
    }
    rescore_long(raw["runs"][0], base, out / "base" / "ct2_float32", files)
    rescore_after_pause(raw["runs"][0], base, out / "base", corpus)
    # the guard decodes the base model, which loops on noise: half an hour on 2 cores, so it is kept too
    raw["runs"] += earlier.get(("guard", None)) or [
        {
            "variant": "guard",
            "seed": None,
            "decoders": {"guard": scores(corpus, guarded_transcripts(model, processor, corpus, DecodeGuard()))},
        }
    ]
    save(raw, options)
    for variant, (loss, pair_file, target) in SILENCE_VARIANTS.items():
        for seed in options.seeds:
            run_dir = out / f"{variant}_seed{seed}"
            if (variant, seed) in earlier:  # measured by an earlier, interrupted run of the same study
                for run in earlier[variant, seed]:
                    rescore_long(run, run_dir, run_dir / "ct2_float32", files)
                    rescore_after_pause(run, run_dir / "merged", run_dir, corpus)
                raw["runs"] += earlier[variant, seed]
                save(raw, options)
                continue
            args = variant_args(replace(options, seed=seed), base, pairs[pair_file], run_dir, max_steps, target, loss)
            train_s = timed_training(args, cache)
            decoders = score_model(run_dir / "merged", run_dir, corpus, files, run_dir)
            run = {"variant": variant, "seed": seed, "train_s": round(train_s, 1), "decoders": decoders}
            raw["runs"].append(run | {"measured": measured_at()})
            logger.info("%s seed %s: %s", variant, seed, json.dumps(decoders)[:400])
            save(raw, options)
    return raw
