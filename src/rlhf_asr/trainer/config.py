"""Options of a training run: model, data, and `PreferenceConfig` (the Trainer's own arguments).

The three dataclasses are parsed together by HfArgumentParser, so every Hugging Face
`TrainingArguments` option passes through unchanged, and the classic `finetune.py` flags keep
their names and meanings. Two defaults differ from finetune.py, following the documented runs
(docs/results.md): LoRA instead of AdaLoRA, and `--alpha 0.1` (the ORPO paper's and TRL's) instead of 1.0.
`--loss` picks the objective (loss/objectives/); its weights are options named as the objective
names them (trainer/objective_options.py builds it and refuses a weight it does not read).

Model options are checked when parsed, so a bad value fails in one line before any loading.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from rlhf_asr.data.nospeech_target import DEFAULT_TARGET, TARGETS
from rlhf_asr.data.options import DatasetOptions, DataSource
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.bundled import DEFAULT_MODEL
from rlhf_asr.option_checks import older_names
from rlhf_asr.trainer.objective_options import DEFAULT_LOSS, LOSS_CHOICES, loss_help, weight_help
from rlhf_asr.trainer.unsupported import refuse_untested_backends

DEFAULT_TARGET_MODULES = "q_proj,k_proj,v_proj,out_proj,fc1,fc2"
# Attention kernels that apply the packed engine's 4-D block mask (engine.packed_attention_mask).
# flex_attention would add the boolean mask to the scores (masking nothing) and flash-attention
# reads a 2-D padding mask: both would let the rejected transcript attend to the chosen one.
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
MODEL_DTYPES = ("float32", "bfloat16", "float16", "auto")


@dataclass
class ModelArguments:
    base_model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Hub id or local folder of a Whisper checkpoint (`tiny.en`/`base` = the bundled weights)."},
    )
    use_adalora: bool = field(default=False, metadata={"help": "AdaLoRA instead of LoRA (ignored with --peft none)."})
    peft: str | None = field(
        default=None,
        metadata={
            "help": "lora | adalora | none (full fine-tuning). Default: from --use_adalora (LoRA).",
            "choices": ["lora", "adalora", "none"],
        },
    )
    lora_r: int = field(default=32, metadata={"help": "LoRA rank (AdaLoRA: initial rank is --adalora_init_r)."})
    lora_alpha: int = field(default=64)
    lora_dropout: float = field(default=0.05)
    target_modules: str = field(default=DEFAULT_TARGET_MODULES, metadata={"help": "Comma-separated module names."})
    adalora_init_r: int = field(default=12)
    adalora_target_r: int = field(default=4)
    adalora_tinit: float = field(
        default=0.1, metadata={"help": "Warm-up before rank pruning, as a share of all steps."}
    )
    adalora_tfinal: float = field(default=0.2, metadata={"help": "Final fine-tuning at the target rank, as a share."})
    adalora_delta_t: int = field(default=1, metadata={"help": "Steps between two rank reallocations."})
    freeze_encoder: bool = field(
        default=False, metadata={"help": "Train the decoder only; the encoder runs under no_grad."}
    )
    use_8bit: bool = field(
        default=False,
        metadata={"help": "Load the base model in 8 bits (CUDA and bitsandbytes only; not with --freeze_encoder)."},
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={
            "help": (
                "sdpa | eager: the kernels that honour the packed block mask (flash-attention's varlen path: not yet)."
            )
        },
    )
    model_dtype: str = field(
        default="float32",
        metadata={
            "help": "float32 | bfloat16 | float16 | auto (as stored): dtype of the loaded weights. float32 by default, "
            "since large-v3/turbo are stored in fp16 and fp16 trainable weights break fp16 mixed precision."
        },
    )

    def __post_init__(self):
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise UserInputError(
                f"--attn_implementation {self.attn_implementation}: not supported; use sdpa or eager, the kernels that "
                "apply the packed engine's block mask (flash-attention's varlen path may be supported later)"
            )
        if self.use_8bit and self.freeze_encoder:
            raise UserInputError(
                "--use_8bit with --freeze_encoder is not supported: the combination aborted the process inside "
                "bitsandbytes on a GPU (CUDA 'invalid argument' at the first batch); drop one of the two"
            )
        if self.model_dtype not in MODEL_DTYPES:
            raise UserInputError(f"--model_dtype {self.model_dtype}: use one of {', '.join(MODEL_DTYPES)}")

    @property
    def peft_method(self) -> str:
        if self.peft is not None:
            return self.peft
        return "adalora" if self.use_adalora else "lora"


@dataclass(frozen=True)
class _TrainingFiles:
    """The data files and how their rows are read: first in --help, before the dataset options."""

    train_data: str = field(
        default=None,
        metadata={
            "help": "Preference manifest (JSON lines or a JSON array), or a dataset: a save_to_disk folder, "
            ".parquet/.arrow file(s), an audiofolder, or a hub id in the local cache (see the column options)."
        },
    )
    test_data: str | None = field(
        default=None, metadata={"help": "Held-out preference manifest or dataset, for evaluation."}
    )
    language: str | None = field(
        default=None,
        metadata={
            "help": "Language of rows without one (multilingual models; a row's own language wins). "
            "No default: a multilingual run with rows lacking a language stops and names them. "
            "English-only models have no language token and ignore it."
        },
    )
    task: str = field(
        default="transcribe", metadata={"help": "transcribe | translate", "choices": ["transcribe", "translate"]}
    )
    min_audio_len: float = field(default=0.5, metadata={"help": "Shorter audio is skipped (seconds)."})
    max_audio_len: float = field(default=30.0, metadata={"help": "Longer audio is skipped (seconds, at most 30)."})
    timestamps: bool = field(
        default=False, metadata={"help": "Train on `chosens`/`rejecteds` segments with timestamp tokens."}
    )
    nospeech_target: str = field(
        default=DEFAULT_TARGET,
        metadata={
            "help": "The chosen of a no-speech pair. eot: the prompt then <|endoftext|>, and the saved generation "
            "config lets <|endoftext|> come first, so the pipeline, generate and faster-whisper can write nothing; "
            "nospeech: Whisper's <|nospeech|> path, generation config unchanged; both: that path and that config "
            "(docs/decoding.md).",
            "choices": list(TARGETS),
        },
    )
    augment_config_path: str | None = field(
        default=None, metadata={"help": "JSON/YAML audio augmentation config (train only)."}
    )
    skip_invalid_rows: bool = field(
        default=False, metadata={"help": "Skip and count bad manifest rows instead of stopping."}
    )
    duration_tolerance: float = field(
        default=0.5, metadata={"help": "Seconds a declared duration may differ from the audio file's (and 10%%)."}
    )
    max_train_rows: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    # Datasets as --train_data/--test_data (data/sources.py); a JSONL manifest ignores these.
    train_split: str | None = field(
        default=None, metadata={"help": "DatasetDict/hub dataset split to train on (None: train, or its only split)."}
    )
    test_split: str | None = field(
        default=None, metadata={"help": "DatasetDict/hub dataset split to evaluate on (None: test, or its only split)."}
    )


@dataclass(frozen=True)
class DataArguments(DatasetOptions, _TrainingFiles):
    """The data options of a training run: the files and row checks, the dataset options train shares with
    evaluate and make-pairs (data/options.py: config, columns, streaming), then the stream's shuffle."""

    stream_shuffle_buffer: int = field(
        default=1000,
        metadata={
            "help": "--streaming training: rows held to shuffle the stream, as datasets' IterableDataset.shuffle "
            "(a new order each pass, from --seed; memory: this many rows' text). 0 or 1: stream order."
        },
    )

    def __post_init__(self):
        if self.stream_shuffle_buffer < 0:
            raise UserInputError(f"--stream_shuffle_buffer {self.stream_shuffle_buffer}: use 0 (no shuffle) or more")

    def data_source(self, location: str, which: str = "train", limit: int | None = None) -> DataSource:
        """--train_data (`which` "train") or --test_data ("test") at `location`: the split --train_split or
        --test_split names, else the usual one (data/options.py builds it, data/sources.py picks it)."""
        split = self.train_split if which == "train" else self.test_split
        return self.source(location, split, which, f"--{which}_split", limit)

    def row_checks(self, known_languages: Collection[str] | None, kbest_rows: bool = False) -> RowChecks:
        """The row checks of training rows (--min_audio_len, --max_audio_len, --timestamps, --skip_invalid_rows,
        --duration_tolerance), read all at once or streamed; `known_languages`: the tokenizer's."""
        return RowChecks(
            min_duration=self.min_audio_len,
            max_duration=self.max_audio_len,
            timestamps=self.timestamps,
            skip_invalid=self.skip_invalid_rows,
            known_languages=known_languages,
            duration_tolerance=(self.duration_tolerance, 0.10),
            kbest_rows=kbest_rows,
        )


@older_names(disable_prompt_loss="completion_only_loss")
@dataclass
class PreferenceConfig(TrainingArguments):
    """TrainingArguments with the preference-objective options (`--loss` and its weights) and the
    classic finetune.py defaults. Defaults it changes from TrainingArguments, and why:

    - `learning_rate` 1e-3 (not 5e-5), `warmup_steps` 50, `logging_steps` 10, `save_total_limit` 5,
      `eval_strategy`/`save_strategy` epoch, `output_dir` output/: finetune.py's values, kept for the
      classic flags (an adapter trains at a higher rate than full fine-tuning).
    - `fp16` on: finetune.py's; switched off with one line where there is no GPU.
    - `remove_unused_columns` False: the collator's batch is not a model signature's columns.
    - `report_to` auto: TensorBoard where installed, else nothing.

    And one from Whisper fine-tuning recipes, which keep the task prompt
    (<|lang|> <|transcribe|> <|notimestamps|>) in the labels: `completion_only_loss` is on, so both
    log-probs score the transcript and its <|endoftext|> only, as TRL's preference trainers score
    the completion and never the prompt (TRL's SFTConfig names the option so; this one was
    `disable_prompt_loss`, a spelling still accepted). The prompt is the same in chosen and rejected, so it can
    only dilute the contrast, and most for the shortest transcript: a no-speech pair's chosen is
    <|endoftext|> alone. docs/results/hallucination_runs.md measures the hallucination study with the
    prompt out and in.

    The objective: `loss` orpo (the default until the results study compares them), sft, dpo,
    simpo or mwer (on K-best rows); `alpha` 0.1 for ORPO (the paper's and TRL's `beta`, not
    finetune.py's 1.0); the other weights None, each the objective's own default (DPO `beta` 0.1,
    SimPO `beta` 2.0, `gamma` 1.0, MWER `ce_weight` 0.01, `reference_in_list` True).
    """

    output_dir: str = field(default="output/", metadata={"help": "Where checkpoints, logs and the final model go."})
    learning_rate: float = field(default=1e-3)
    num_train_epochs: float = field(default=3)
    per_device_train_batch_size: int = field(default=8)
    per_device_eval_batch_size: int = field(default=8)
    warmup_steps: float = field(default=50)
    fp16: bool = field(default=True, metadata={"help": "fp16 mixed precision (switched off where there is no GPU)."})
    logging_steps: float = field(default=10)
    eval_strategy: str = field(
        default="epoch", metadata={"help": "no | steps | epoch (no when there is no --test_data)."}
    )
    save_strategy: str = field(default="epoch")
    save_total_limit: int | None = field(default=5)
    remove_unused_columns: bool = field(default=False)
    report_to: None | str | list[str] = field(default="auto", metadata={"help": "auto = tensorboard where installed."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Delete checkpoints of an earlier run in --output_dir (else such a folder is refused)."},
    )

    loss: str = field(default=DEFAULT_LOSS, metadata={"help": loss_help(), "choices": list(LOSS_CHOICES)})
    alpha: float = field(
        default=0.1,
        metadata={
            "help": "--loss orpo: weight of the odds-ratio term (the paper's lambda, TRL's ORPOConfig `beta`); 0.1 as "
            "in the ORPO paper and TRL. 0 leaves the NLL alone, as before; --loss sft is the way to train that."
        },
    )
    beta: float | None = field(default=None, metadata={"help": weight_help("beta")})
    gamma: float | None = field(
        default=None, metadata={"help": weight_help("gamma", "TRL's CPOConfig spells it simpo_gamma: an alias.")}
    )
    label_smoothing: float | None = field(default=None, metadata={"help": weight_help("label_smoothing")})
    rpo_alpha: float | None = field(default=None, metadata={"help": weight_help("rpo_alpha")})
    cpo_alpha: float | None = field(default=None, metadata={"help": weight_help("cpo_alpha")})
    ce_weight: float | None = field(default=None, metadata={"help": weight_help("ce_weight")})
    reference_in_list: bool = field(default=True, metadata={"help": weight_help("reference_in_list")})
    completion_only_loss: bool = field(
        default=True,
        metadata={
            "help": (
                "Leave the task-prompt tokens (language, task, notimestamps) out of both log-probs, as TRL's "
                "ORPO leaves its prompt out (False: scored too, as Whisper fine-tuning recipes do)."
            )
        },
    )
    rejected_scope: str = field(
        default="all",
        metadata={
            "help": (
                "all | diverging: the odds ratio compares chosen and rejected from their first differing token "
                "(the shared prefix left out of both); the NLL stays over the whole chosen."
            ),
            "choices": ["all", "diverging"],
        },
    )
    engine: str = field(
        default="packed",
        metadata={
            "help": "packed (one encoder pass, shared) | naive | concat",
            "choices": ["packed", "naive", "concat"],
        },
    )
    checkpoint_decoder: bool = field(
        default=False,
        metadata={"help": "Packed engine: recompute decoder layers in backward (fits more pairs, costs some time)."},
    )
    logps_chunk_size: int = field(
        default=256, metadata={"help": "Tokens per chunk when scoring labels over the vocabulary."}
    )
    encoder_cache: str = field(
        default="none",
        metadata={
            "help": "none | memory | disk: reuse encoder outputs across epochs (frozen encoder, no augmentation).",
            "choices": ["none", "memory", "disk"],
        },
    )
    encoder_cache_mb: int = field(default=2048, metadata={"help": "Memory budget of --encoder_cache memory."})
    group_by_length: bool = field(
        default=False, metadata={"help": "Batch pairs of similar transcript length (less padding)."}
    )
    eval_wer: bool = field(
        default=False, metadata={"help": "Also decode the test set and log WER/CER at each evaluation."}
    )
    eval_wer_max_rows: int = field(default=200, metadata={"help": "Rows decoded for --eval_wer."})
    use_compile: bool = field(default=False, metadata={"help": "torch.compile the model (same as --torch_compile)."})
    plot: bool = field(default=True, metadata={"help": "Write training_curves.png into the output folder."})
    merge_at_end: bool = field(
        default=False,
        metadata={"help": "Also write OUTPUT_DIR/merged: the adapter folded into the base, a standard Whisper folder."},
    )

    def __post_init__(self):
        refuse_untested_backends(self)  # before TrainingArguments imports DeepSpeed or sets up FSDP
        # Said just before training starts (trainer/run.py), after every check: an error stays one line.
        self.setup_notes: list[str] = []
        # fp16 is on by default (the classic flags): an explicit --bf16 is the user's choice of the two.
        if self.bf16 and self.fp16:
            self.setup_notes.append("--bf16 given: bf16 mixed precision instead of the default fp16")
            self.fp16 = False
        cuda = torch.cuda.is_available()
        # One clear line instead of TrainingArguments' error when half precision has no GPU.
        if self.fp16 and not cuda:
            self.setup_notes.append("no CUDA device: fp16 switched off, training in float32 (--bf16 True works on CPU)")
            self.fp16 = False
        if self.bf16 and not cuda:
            self.setup_notes.append("no CUDA device: bf16 autocast on CPU")
            self.use_cpu = True  # TrainingArguments accepts bf16 without a GPU only when told it runs on CPU
        if not cuda:  # pinned memory only speeds copies to a GPU; without one the DataLoader warns at every epoch
            self.dataloader_pin_memory = False
        # Accelerate forms a CPU (gloo) process group under torchrun only when told it runs on CPU.
        if not cuda and int(os.environ.get("LOCAL_RANK", -1)) != -1:
            self.use_cpu = True
        if self.report_to == "auto":
            self.report_to = "tensorboard" if importlib.util.find_spec("tensorboard") else "none"
        if self.use_compile:
            self.torch_compile = True
        if self.group_by_length:
            self.train_sampling_strategy = "group_by_length"
        super().__post_init__()


ORPOConfig = PreferenceConfig  # the name before --loss; training_args.bin of earlier runs unpickles through it
