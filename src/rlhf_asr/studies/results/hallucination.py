"""Study: `rlhf-asr results --study hallucination`, the evidence behind docs/results.md's hallucination table.

The demo's speech corpus plus generated non-speech clips (`studies/nonspeech.py`: training and
held-out clips differ in kind and duration). Compared at equal steps over seeds: the base model;
the base model behind Whisper's decode-time guard (`inference/guard.py`); SFT and ORPO on the speech
pairs plus the no-speech pairs (plus the loop pairs, `--loop_pairs`); ORPO on the speech pairs only
(does silence cost speech WER?); with loop pairs, ORPO on the same set without them (their ablation);
and the models trained on no-speech pairs behind the same decode-time guard (training and the guard
together, the recipe a user can run).
Scores: speech WER on both held-out splits, hallucination rate on the held-out non-speech clips,
repetition rate on every held-out output.

As in `wer.py`, the encoder runs once per clip and serves decoding, training (a
pre-filled cache) and evaluation. Raw numbers go to hallucination_raw.json after every run (an
interrupted study keeps what ran) and the report is rendered from them alone. The silence study
(`silence.py`) starts from the same corpus and pairs (`study_start`) and saves the same way (`save`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NamedTuple

from rlhf_asr.evaluation.hallucination import hallucination_rate, repetition_rate
from rlhf_asr.evaluation.metrics import error_rates
from rlhf_asr.inference.guard import DecodeGuard, guard_transcripts
from rlhf_asr.studies.corpus import Corpus
from rlhf_asr.studies.nonspeech import NONSPEECH_SPLITS, add_nonspeech
from rlhf_asr.studies.options import (
    GUARDED_VARIANTS,
    HALLUCINATION_VARIANTS,
    ResultsOptions,
    synthesize_corpus,
    training_args,
)
from rlhf_asr.studies.results.report import environment, regenerate, write_text
from rlhf_asr.studies.stages import (
    base_transcripts,
    decode_split,
    load_decoding_model,
    make_split_pairs,
    timed_training,
)

logger = logging.getLogger(__name__)
HELD_OUT = ("test", "test_voices", "nonspeech_test")


def held_out_scores(corpus, transcripts: dict[str, list[str]]) -> dict:
    """Speech WER per split, hallucination rate on non-speech, repetition rate over every held-out output."""
    speech = [split for split in ("test", "test_voices") if split in transcripts]
    result = {f"wer_{split}": error_rates(corpus.texts(split), transcripts[split], "en")["wer"] for split in speech}
    result["hallucination_rate"] = hallucination_rate(transcripts["nonspeech_test"])
    splits = [*speech, "nonspeech_test"]
    result["repetition_rate"] = repetition_rate(
        [t for split in splits for t in corpus.texts(split)], [h for split in splits for h in transcripts[split]]
    )
    return result


class Start(NamedTuple):
    """What every compared run of the hallucination and silence studies starts from, made once."""

    corpus: Corpus  # speech and the generated non-speech splits
    base: Path  # the base model's folder
    model: Any  # the base model, for decoding
    processor: Any
    hidden: dict  # encoder outputs per split
    before: dict  # the base model's transcripts per split
    pair_files: dict  # "mixed": speech + no-speech pairs, "speech": speech pairs only
    mixed: list  # the mixed pairs, (index, row)
    speech: list  # the speech pairs, (index, row)
    cache: Any  # EncoderCache holding every pair's encoder output
    max_steps: int  # every trained run's steps: the epochs over the mixed pairs


def study_start(options: ResultsOptions, out: Path, mixed_name: str, loops: bool = False) -> Start:
    """The corpus with its non-speech splits, the base model's transcripts, and the mixed pairs (in
    `mixed_name`, with the loop pairs when `loops`) and speech pairs (pairs.jsonl) they give."""
    corpus = add_nonspeech(
        synthesize_corpus(options, out / "corpus", seed=0), options.nonspeech_train, options.nonspeech_test, seed=0
    )
    base, model, processor, hidden, before = base_transcripts(options, corpus)
    mixed_path, mixed, cache = make_split_pairs(
        corpus, ("train", "nonspeech_train"), before, hidden, model, mixed_name, loops=loops
    )
    speech_path, speech, _ = make_split_pairs(corpus, ("train",), before, hidden, model, "pairs.jsonl", cache)
    max_steps = math.ceil(len(mixed) / options.batch_size) * math.ceil(options.epochs)
    pair_files = {"mixed": mixed_path, "speech": speech_path}
    return Start(corpus, base, model, processor, hidden, before, pair_files, mixed, speech, cache, max_steps)


def run_hallucination(options: ResultsOptions) -> dict:
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = study_start(options, out, "pairs_nonspeech.jsonl", loops=options.loop_pairs)
    corpus, base, model, processor, hidden, before, pair_files, mixed, speech, cache, max_steps = start
    if options.loop_pairs:
        pair_files["mixed_no_loops"] = make_split_pairs(
            corpus, ("train", "nonspeech_train"), before, hidden, model, "pairs_nonspeech_no_loops.jsonl", cache
        )[0]
    variants = {name: spec for name, spec in HALLUCINATION_VARIANTS.items() if spec[1] in pair_files}
    guard = DecodeGuard()
    guarded = guarded_transcripts(model, processor, corpus, guard)
    raw = {
        "study": "hallucination",
        "options": asdict(options),
        "clips": {
            name: {"count": len(corpus.splits[split]), "kinds": list(kinds), "durations": list(durations)}
            for name, (split, (kinds, durations)) in zip(("train", "test"), NONSPEECH_SPLITS.items())
        },
        "guard": asdict(guard),
        "speech_pairs": len(speech),
        "loop_pairs": sum(row.get("kind") == "loop" for _, row in mixed),
        "nonspeech_pairs": sum(row["chosen"] == "" for _, row in mixed),
        "max_steps": max_steps,
        "base_nonspeech_outputs": dict(Counter(before["nonspeech_test"]).most_common()),
        "planned_runs": 2 + len(options.seeds) * (len(variants) + len(GUARDED_VARIANTS)),
        "runs": [
            {"variant": "base", "seed": None, **held_out_scores(corpus, before)},
            {"variant": "guard", "seed": None, **held_out_scores(corpus, guarded)},
        ],
        "environment": environment(),
    }
    save(raw, options)
    for seed in options.seeds:
        for variant, (alpha, pairs) in variants.items():
            run_dir = out / f"{variant}_seed{seed}"
            args = training_args(
                replace(options, alpha=alpha, seed=seed),
                base,
                pair_files[pairs],
                run_dir,
                max_steps=max_steps,
                plot=False,
            )
            train_s = timed_training(args, cache)
            tuned, _ = load_decoding_model(run_dir)
            after = {
                split: decode_split(tuned, processor, hidden, corpus, split, options.decode_batch_size)
                for split in HELD_OUT
            }
            raw["runs"].append(
                {"variant": variant, "seed": seed, "train_s": round(train_s, 1), **held_out_scores(corpus, after)}
            )
            logger.info("%s", raw["runs"][-1])
            if variant in GUARDED_VARIANTS:
                scores = held_out_scores(corpus, guarded_transcripts(tuned, processor, corpus, guard))
                raw["runs"].append({"variant": f"{variant}_guard", "seed": seed, **scores})
                logger.info("%s", raw["runs"][-1])
            save(raw, options)
    return raw


def guarded_transcripts(model, processor, corpus, guard: DecodeGuard) -> dict[str, list[str]]:
    """Held-out transcripts of `model` decoded again from audio behind the decode-time guard."""
    return {
        split: guard_transcripts(model, processor, [corpus.folder / u.path for u in corpus.splits[split]], guard)
        for split in HELD_OUT
    }


def save(raw: dict, options: ResultsOptions) -> None:
    """Raw numbers and the report rendered from them, after every run (an interrupted study keeps what ran)."""
    raw["complete"] = len(raw["runs"]) == raw["planned_runs"]
    write_text(options.raw_path, json.dumps(raw, indent=2) + "\n")
    regenerate(options.raw_path, options.report_path)  # the report is whatever its raw file renders to
