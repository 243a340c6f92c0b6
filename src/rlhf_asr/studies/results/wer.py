"""Study: `rlhf-asr results`, the evidence behind docs/results.md.

On the demo's synthetic corpus (bundled tiny.en, espeak-ng voices; held-out texts, and held-out
texts spoken by held-out voices), compare at equal training steps and over several seeds:
the base model, SFT on the chosen transcripts (`--alpha 0`), and ORPO with both rejected scopes.
Reports held-out WER, preference accuracy on held-out pairs (does the model give the reference a
higher mean log-prob than the base model's own wrong transcript?) and training time.

The corpus, the base model's transcripts and the encoder outputs are made once and shared by
every run (frozen encoder, LoRA on the decoder), so runs differ only by objective and seed.
Raw numbers go to `raw.json` and the report is rendered from it alone (`wer_report.py`):
`rlhf-asr results --from_raw docs/results/wer/raw.json --report docs/results.md` regenerates it without
training. Both go to `results_output/` by default, never over the committed docs.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NamedTuple

from rlhf_asr.evaluation.metrics import error_rates
from rlhf_asr.studies.corpus import Corpus
from rlhf_asr.studies.options import TEST_SPLITS, VARIANTS, ResultsOptions, synthesize_corpus, training_args
from rlhf_asr.studies.results.report import environment, regenerate, write_text
from rlhf_asr.studies.stages import (
    base_transcripts,
    decode_split,
    load_decoding_model,
    make_pairs,
    pick_threads,
    timed_training,
)

__all__ = ["VARIANTS", "ResultsOptions", "regenerate", "run_results"]
logger = logging.getLogger(__name__)


def evaluate_model(model, processor, corpus, hidden, held_out, options: ResultsOptions) -> dict:
    """Held-out WER of both test splits and preference accuracy on the held-out pairs."""
    from rlhf_asr.evaluation.evaluate import preference_accuracy
    from rlhf_asr.inference.decode import decoder_prefixes

    pick_threads(1)
    result = {}
    for split in TEST_SPLITS:
        hypotheses = decode_split(model, processor, hidden, corpus, split, options.decode_batch_size)
        result[f"wer_{split}"] = error_rates(corpus.texts(split), hypotheses, "en")["wer"]
    prefixes = decoder_prefixes(processor, ["en"]) * hidden["test"].shape[0]
    owners, chosen, rejected = (
        [i for i, _ in held_out],
        [r["chosen"] for _, r in held_out],
        [r["rejected"] for _, r in held_out],
    )
    result["preference_accuracy"] = preference_accuracy(
        model, processor, hidden["test"], owners, prefixes, chosen, rejected
    )
    return result


class SpeechStart(NamedTuple):
    """What every compared run of the WER and objectives studies starts from, made once (the objectives
    study on no-speech pairs too: `objectives.nonspeech_start`)."""

    out: Path  # the study's output folder
    corpus: Corpus
    base: Path  # the base model's folder
    model: Any  # the base model, for decoding
    processor: Any
    hidden: dict  # encoder outputs per split
    before: dict  # the base model's transcripts per split
    pairs_path: Path  # the preference pairs: the training clips the base model got wrong
    pairs: list  # (index, row)
    cache: Any  # EncoderCache holding every pair's encoder output
    held_out: list  # (index, row) pairs of the held-out texts, for preference accuracy
    max_steps: int  # every trained run's steps: the epochs over the pairs


def held_out_pairs(corpus: Corpus, hypotheses: list[str]) -> list:
    """(index, row) pairs of the held-out texts the base model got wrong (its `hypotheses`), for preference accuracy."""
    from rlhf_asr.pairs import mistake_rows

    test = corpus.splits["test"]
    return mistake_rows([u.path for u in test], [u.duration for u in test], corpus.texts("test"), hypotheses)


def speech_start(options: ResultsOptions) -> SpeechStart:
    """The corpus, the base model's transcripts, the speech pairs and the held-out pairs."""
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = synthesize_corpus(options, out / "corpus", seed=0)
    base, model, processor, hidden, before = base_transcripts(options, corpus)
    pairs_path, pairs, cache = make_pairs(corpus, before["train"], hidden["train"], model)
    held_out = held_out_pairs(corpus, before["test"])
    max_steps = math.ceil(len(pairs) / options.batch_size) * math.ceil(options.epochs)
    return SpeechStart(
        out, corpus, base, model, processor, hidden, before, pairs_path, pairs, cache, held_out, max_steps
    )


def run_results(options: ResultsOptions) -> dict:
    out, corpus, base, model, processor, hidden, _, pairs_path, pairs, cache, held_out, max_steps = speech_start(
        options
    )
    runs = [
        {
            "variant": "base",
            "seed": None,
            "train_s": 0.0,
            **evaluate_model(model, processor, corpus, hidden, held_out, options),
        }
    ]
    logger.info("base: %s", runs[0])
    for seed in options.seeds:
        for variant in options.variants:
            alpha, scope = VARIANTS[variant]
            run_dir = out / f"{variant}_seed{seed}"
            args = training_args(
                replace(options, alpha=alpha, seed=seed),
                base,
                pairs_path,
                run_dir,
                max_steps=max_steps,
                rejected_scope=scope,
                plot=False,
            )
            train_s = timed_training(args, cache)
            tuned, _ = load_decoding_model(run_dir)
            runs.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "train_s": round(train_s, 1),
                    **evaluate_model(tuned, processor, corpus, hidden, held_out, options),
                }
            )
            logger.info("%s", runs[-1])
            (out / "runs.json").write_text(json.dumps(runs, indent=2))

    raw = {
        "options": asdict(options),
        "pairs": len(pairs),
        "held_out_pairs": len(held_out),
        "max_steps": max_steps,
        "runs": runs,
        "environment": environment(),
    }
    write_text(options.raw_path, json.dumps(raw, indent=2) + "\n")
    regenerate(options.raw_path, options.report_path)  # the report is whatever its raw file renders to
    logger.info("report: %s", options.report_path)
    return raw
