"""Study: `rlhf-asr results --study objectives`, which `train --loss` objective gives the lowest held-out WER?

The WER study's corpus, base transcripts and speech pairs (`wer.speech_start`): the base model,
then SFT, ORPO, DPO and SimPO on the speech pairs and MWER on K-best rows of the same training clips
(`--nbest` K, default 4: make-pairs --nbest's decoding and rows, `stages.make_kbest_rows`), and by
default DPO again with RPO's NLL term (`dpo:rpo_alpha=1`: without it DPO collapsed at the shared
learning rate). Each objective trains with its weights at the trainer's defaults unless its spec
changes them (`objective_spec.py`; recorded in the raw file), the same LoRA, learning rate and
batch, and the same number of optimizer steps: the WER study's, ceil(pairs /
batch) x ceil(epochs). MWER's K-best rows are more (every training clip with a wrong hypothesis), so
its steps cover them fewer times; every step is `batch_size` rows for every objective.

`--study objectives_nonspeech` runs the same objectives on the hallucination study's corpus and pairs
(`hallucination.study_start`): speech plus no-speech pairs (chosen "", the `eot` target), MWER on
K-best rows of the training speech and non-speech clips, the hallucination study's steps; each run
is also scored on the held-out non-speech clips (any output, words).

Per run: held-out WER on texts (`test`) and voices (`test_voices`), preference accuracy on the
held-out pairs (reference against the base model's own wrong transcript), training time (DPO's
includes computing the starting model's log-probs). `--objectives` runs a subset. Raw numbers go to
<study>_raw.json after every run and the report (`objectives_report.py`) is rendered from it
alone; rerunning the same command continues an interrupted study (`resume.earlier_runs`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path

from rlhf_asr.evaluation.hallucination import nonspeech_rates
from rlhf_asr.studies.options import STUDY_OBJECTIVES, ResultsOptions, training_args
from rlhf_asr.studies.results.hallucination import save, study_start
from rlhf_asr.studies.results.objective_spec import ObjectiveSpec, parse_spec
from rlhf_asr.studies.results.report import environment, measured_at
from rlhf_asr.studies.results.resume import earlier_runs
from rlhf_asr.studies.results.wer import SpeechStart, evaluate_model, held_out_pairs, speech_start
from rlhf_asr.studies.stages import (
    decode_split,
    load_decoding_model,
    make_kbest_rows,
    pick_threads,
    timed_training,
)

logger = logging.getLogger(__name__)
KBEST_OBJECTIVES = ("mwer",)  # trained on K-best rows; the others on the preference pairs
KBEST_SPLITS = ("train", "nonspeech_train")  # the training clips K-best rows are made of, where the corpus has them
NONSPEECH_TEST = "nonspeech_test"


def nonspeech_start(options: ResultsOptions) -> SpeechStart:
    """`--study objectives_nonspeech`: the hallucination study's corpus, speech + no-speech pairs and steps."""
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = study_start(options, out, "pairs_nonspeech.jsonl")
    held_out = held_out_pairs(start.corpus, start.before["test"])
    return SpeechStart(
        out, start.corpus, start.base, start.model, start.processor, start.hidden, start.before,
        start.pair_files["mixed"], start.mixed, start.cache, held_out, start.max_steps,
    )  # fmt: skip


def scores(model, start: SpeechStart, options: ResultsOptions) -> dict:
    """Held-out WER and preference accuracy, and on held-out non-speech (when the corpus has it) the
    share of clips with any output and with words."""
    result = evaluate_model(model, start.processor, start.corpus, start.hidden, start.held_out, options)
    if NONSPEECH_TEST in start.hidden:
        corpus, batch = start.corpus, options.decode_batch_size
        texts = decode_split(model, start.processor, start.hidden, corpus, NONSPEECH_TEST, batch)
        result.update(nonspeech_rates(texts))
    return result


def objective_args(options: ResultsOptions, spec: ObjectiveSpec, seed: int, start, data, run_dir):
    """`train`'s (ModelArguments, DataArguments, PreferenceConfig) of one run: `--loss spec.loss`, every
    weight at the trainer's default (ORPO's alpha included, whatever `--alpha` says) unless the spec
    changes it, the spec's learning rate or the study's, the study's steps."""
    from rlhf_asr.trainer.objective_options import WEIGHT_DEFAULTS

    learning_rate = spec.learning_rate or options.learning_rate
    return training_args(
        replace(options, alpha=WEIGHT_DEFAULTS["alpha"], seed=seed, learning_rate=learning_rate), start.base, data,
        run_dir, loss=spec.loss, max_steps=start.max_steps, plot=False, overwrite_output_dir=True,
        **dict(spec.weights),
    )  # fmt: skip


def objective_weights(args) -> dict:
    """The weights the run's objective trains with, its defaults filled in (as the raw file records them)."""
    from rlhf_asr.trainer.objective_options import training_objective, weights_of

    return weights_of(training_objective(args[2]))


def run_objectives(options: ResultsOptions) -> dict:
    specs = [parse_spec(text, STUDY_OBJECTIVES) for text in options.objectives]
    start = (nonspeech_start if options.study == "objectives_nonspeech" else speech_start)(options)
    data = {"pairs": start.pairs_path}
    kbest_rows = None
    if any(spec.loss in KBEST_OBJECTIVES for spec in specs):
        pick_threads(1)
        splits = tuple(split for split in KBEST_SPLITS if split in start.corpus.splits)
        data["kbest"], rows = make_kbest_rows(
            start.corpus, splits, start.hidden, start.model, start.processor, options.nbest,
            options.decode_batch_size, start.cache,
        )  # fmt: skip
        kbest_rows = len(rows)
    earlier = earlier_runs(options, options.study)
    raw = {
        "study": options.study,
        "options": asdict(options),
        "pairs": len(start.pairs),
        "nonspeech_pairs": sum(row["chosen"] == "" for _, row in start.pairs),
        "kbest_rows": kbest_rows,
        "held_out_pairs": len(start.held_out),
        "max_steps": start.max_steps,
        "weights": {},
        "planned_runs": 1 + len(options.seeds) * len(options.objectives),
        "runs": earlier.get(("base", None))
        or [{"variant": "base", "seed": None, **scores(start.model, start, options)}],
        "environment": environment(),
    }
    save(raw, options)
    for seed in options.seeds:
        for spec in specs:
            objective = spec.text
            run_dir = start.out / f"{spec.folder}_seed{seed}"
            pair_file = data["kbest" if spec.loss in KBEST_OBJECTIVES else "pairs"]
            args = objective_args(options, spec, seed, start, pair_file, run_dir)
            raw["weights"][objective] = objective_weights(args)
            if (objective, seed) in earlier:  # measured by an earlier, interrupted run of the same study
                raw["runs"] += earlier[objective, seed]
                save(raw, options)
                continue
            train_s = timed_training(args, start.cache)
            tuned, _ = load_decoding_model(run_dir)
            run = {"variant": objective, "seed": seed, "train_s": round(train_s, 1), **scores(tuned, start, options)}
            raw["runs"].append(run | {"measured": measured_at()})
            logger.info("%s", raw["runs"][-1])
            save(raw, options)
    return raw
