"""Options of `rlhf-asr demo` and `rlhf-asr results`, and the training options they imply.

The training options are built as the dataclasses `rlhf-asr train` parses into (no flag strings),
so a study's run is exactly a `train` run with these values. Light to import (no torch): the
commands read these defaults for `--help`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_asr.model.bundled import DEFAULT_MODEL
from rlhf_asr.option_checks import older_names

TRAIN_VOICES = ["en-us", "en-us+m3", "en+f2", "en-gb", "en-gb-scotland", "en-us+croak"]
HELD_OUT_VOICES = ["en-gb-x-rp", "en-us-nyc"]
SPEEDS = [140, 160, 180, 200]
TEST_SPLITS = {"test": "held-out texts, seen voices", "test_voices": "held-out texts, held-out voices"}

# name -> (alpha, rejected scope); 0.1 is the paper's and TRL's default weight of the odds-ratio term
ORPO_ALPHA = 0.1
VARIANTS = {"sft": (0.0, "all"), "orpo": (ORPO_ALPHA, "all"), "orpo_diverging": (ORPO_ALPHA, "diverging")}
# The hallucination study (`--study hallucination`): name -> (alpha, pairs trained on). "orpo" is the
# speech-only model above; the others add the no-speech pairs of the generated training clips (and,
# with `loop_pairs`, the loop pairs of the speech texts: "mixed_no_loops" leaves those out).
HALLUCINATION_VARIANTS = {
    "orpo_nonspeech": (ORPO_ALPHA, "mixed"),
    "sft_nonspeech": (0.0, "mixed"),
    "orpo": (ORPO_ALPHA, "speech"),
    "orpo_nonspeech_no_loops": (ORPO_ALPHA, "mixed_no_loops"),  # run only with --loop_pairs: their ablation
}
# The trained variants also decoded behind the decode-time guard, reported as `<variant>_guard`.
GUARDED_VARIANTS = ("orpo_nonspeech", "sft_nonspeech")
# The objectives study (`--study objectives`): every `train --loss` compared on the WER study's pairs
# (MWER on K-best rows of the same clips), each objective's weights at the trainer's defaults.
STUDY_OBJECTIVES = ("sft", "orpo", "dpo", "simpo", "mwer")
# What the study runs by default: each objective at the trainer's defaults, and DPO, SimPO and MWER each
# with a full-weight NLL term on the chosen (DPO's `rpo_alpha`, from RPO; SimPO's `cpo_alpha`, CPO-SimPO;
# MWER's `ce_weight`, the paper's lambda, 0.01 by default), as each collapsed alone at the shared learning
# rate (docs/results/objectives, seed 0: DPO's chosen log-probs -13 -> -111, held-out WER 99.8%; SimPO's
# mean per-token log-prob of the chosen -9.0, WER 99.3%; MWER's reference NLL 0.8 -> 9.2, WER 196%: loops).
DEFAULT_STUDY_OBJECTIVES = (
    "sft", "orpo", "dpo", "dpo:rpo_alpha=1", "simpo", "simpo:cpo_alpha=1", "mwer", "mwer:ce_weight=1"
)  # fmt: skip
OBJECTIVES_STUDIES = ("objectives", "objectives_nonspeech")  # objectives.py runs both, objectives_report renders both
NONSPEECH_STUDIES = ("hallucination", "silence", "objectives_nonspeech")  # corpora with non-speech clips
STUDIES = ("wer", "hallucination", "silence", *OBJECTIVES_STUDIES)


def default_workers() -> int:
    """espeak-ng processes at once: each is single-threaded; more than 4 gains little."""
    return max(1, min(4, os.cpu_count() or 1))


@older_names(disable_prompt_loss="completion_only_loss")  # the raw files of earlier studies record the older name
@dataclass
class DemoOptions:
    output_dir: str = field(default="demo_output", metadata={"help": "where corpus, model and report go"})
    num_train: int = field(default=240, metadata={"help": "training utterances (texts)"})
    num_test: int = field(
        default=60, metadata={"help": "held-out texts; each is spoken by a training voice and by a held-out voice"}
    )
    epochs: float = field(default=3.0, metadata={"help": "training epochs"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate (linear decay, 5 warm-up steps)"})
    batch_size: int = field(default=8, metadata={"help": "preference pairs per step"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (lora_alpha = 2 r)"})
    # the ORPO paper's lambda; other weights tried: docs/results.md's notes
    alpha: float = field(default=0.1, metadata={"help": "weight of ORPO's odds-ratio term"})
    seed: int = field(default=0, metadata={"help": "texts, voices and training"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "tiny.en (bundled) or a local Whisper folder"})
    train_voices: list[str] = field(default_factory=lambda: list(TRAIN_VOICES), metadata={"help": "espeak-ng voices"})
    test_voices: list[str] = field(
        default_factory=lambda: list(HELD_OUT_VOICES), metadata={"help": "held-out espeak-ng voices"}
    )
    speeds: list[int] = field(
        default_factory=lambda: list(SPEEDS), metadata={"help": "speaking rates, words per minute"}
    )
    workers: int = field(default_factory=default_workers, metadata={"help": "espeak-ng processes at once"})
    # 0.9 per speech text, the hallucination study's proportion (72 per 80 texts); the clip counts compared:
    # docs/results/hallucination_runs.md
    nonspeech_train: int = field(
        default=216,
        metadata={
            "help": "generated non-speech training clips (silence, white/pink/band noise, tones, chords; 1-10 s)"
        },
    )
    nonspeech_test: int = field(
        default=20,
        metadata={
            "help": "held-out non-speech clips of other kinds and durations (brown/blue noise, hum, music; 15-30 s)"
        },
    )
    # Off: they stop the rare speech loop but cost silence (docs/results/hallucination_runs.md,
    # docs/results/demo_loop_pairs)
    loop_pairs: bool = field(
        default=False,
        metadata={"help": "also pair each training reference against itself running into a repetition loop"},
    )
    # On, as `rlhf-asr train` (PreferenceConfig says why): a no-speech pair contrasts <|endoftext|> with the
    # first word itself (docs/results/hallucination_runs.md: the study with the prompt in and out)
    completion_only_loss: bool = field(
        default=True, metadata={"help": "leave the task-prompt tokens (language, task, notimestamps) out of the loss"}
    )
    # a decoding step costs about the same for 4 clips as for 32 on CPU
    decode_batch_size: int = field(default=32, metadata={"help": "clips decoded together"})
    # 0 = one, plus one encoder worker per core (see `stages.pick_threads`)
    threads: int = field(
        default=0, metadata={"help": "torch threads per stage (0: one, and one encoder worker per core)"}
    )


@older_names()
@dataclass
class ResultsOptions(DemoOptions):
    output_dir: str = "results_output"
    report_path: str = "results_output/results.md"  # ignored folder; copy to docs/ deliberately
    raw_path: str = "results_output/raw.json"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    study: str = field(
        default="wer",
        metadata={
            "help": "wer: base, SFT and ORPO on speech pairs (--variants); hallucination: base, decode-time guard, "
            "SFT and ORPO with non-speech pairs, speech-only ORPO (hallucination_raw.json, hallucination.md); silence: "
            "the same scored under the pipeline and faster-whisper, per no-speech target (silence_raw.json, "
            "silence.md); objectives: base and every `train --loss` at equal steps (objectives_raw.json, "
            "objectives.md); objectives_nonspeech: the same on speech + no-speech pairs, also scored on held-out "
            "non-speech (objectives_nonspeech_raw.json, objectives_nonspeech.md)"
        },
    )
    objectives: list[str] = field(
        default_factory=lambda: list(DEFAULT_STUDY_OBJECTIVES),
        metadata={
            "help": "--study objectives(_nonspeech): the `train --loss` objectives to run, each at the trainer's "
            "defaults, or with changes to its weights or learning rate after a colon (dpo:rpo_alpha=1, "
            "dpo:learning_rate=1e-4,beta=0.5): each spec is a run of its own"
        },
    )
    nbest: int = field(
        default=4, metadata={"help": "--study objectives(_nonspeech): K, the hypotheses per K-best row MWER trains on"}
    )


def recorded_options(recorded: dict) -> dict:
    """Options as a raw file or metrics.json recorded them, under today's names (`DemoOptions.older_names`)."""
    return {DemoOptions.older_names.get(name, name): value for name, value in recorded.items()}


def synthesize_corpus(options: DemoOptions, folder: Path, seed: int):
    """The studies' corpus (studies/corpus.py) as `options` size it; results fix the seed across runs."""
    from rlhf_asr.studies.corpus import build_corpus

    return build_corpus(
        folder,
        options.num_train,
        options.num_test,
        options.train_voices,
        options.test_voices,
        options.speeds,
        seed=seed,
        workers=options.workers,
    )


def training_args(options: DemoOptions, base: Path, pairs: Path, output: Path, **config_changes):
    """(ModelArguments, DataArguments, ORPOConfig) of the demo's run: LoRA on the decoder (self- and
    cross-attention, MLP), frozen encoder; `config_changes` override ORPOConfig fields (results' variants)."""
    from rlhf_asr.trainer.config import DEFAULT_TARGET_MODULES, DataArguments, ModelArguments, ORPOConfig

    model_args = ModelArguments(
        base_model=str(base),
        peft="lora",
        lora_r=options.lora_r,
        lora_alpha=2 * options.lora_r,
        lora_dropout=0.0,
        target_modules=DEFAULT_TARGET_MODULES,
        freeze_encoder=True,
    )
    data_args = DataArguments(train_data=str(pairs), language="English")
    config = dict(
        output_dir=str(output),
        encoder_cache="none",
        num_train_epochs=options.epochs,
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        warmup_steps=5,
        lr_scheduler_type="linear",
        alpha=options.alpha,
        completion_only_loss=options.completion_only_loss,
        seed=options.seed,
        logging_steps=5,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        dataloader_pin_memory=False,
        disable_tqdm=True,
    )
    return model_args, data_args, ORPOConfig(**{**config, **config_changes})
