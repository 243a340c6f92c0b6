"""`rlhf-asr bench`: peak memory and step time of sft / naive / concat / packed / packed_frozen (or K-best).

Thin wrapper: options here, one process per mode in `rlhf_asr.studies.bench.run` (which takes the same
common options), tables and searches in `rlhf_asr.studies.bench.compare`. Tables go to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from rlhf_asr.commands.parser import check_positive, options_parser, parse_options
from rlhf_asr.errors import UserInputError

log = logging.getLogger(__name__)
# rlhf_asr.studies.bench.run.MODES (a test keeps them equal; bench.run imports torch).
MODES = ("sft", "naive", "concat", "packed", "packed_frozen")
# The names the packed modes had before they took the engine's name; JSON files of those runs use them.
OLDER_MODES = {"ours": "packed", "ours_frozen": "packed_frozen"}
# Default sweeps, (batches, label lengths, steps, warm-up steps): a GPU takes the full grid; a CPU, whose
# steps take tens of seconds (docs/benchmarks.md), a grid that ends in about ten minutes.
SWEEP_GPU = ([2, 8, 16], [32, 64, 128], 3, 1)
SWEEP_CPU = ([2, 4], [32, 128], 1, 1)


@dataclass(frozen=True)
class BenchOptions:
    # Common with the per-mode process (rlhf_asr.studies.bench.run.add_common_args).
    model: str = field(default="tiny", metadata={"help": "tiny | base | small | medium | large-v3 | a Whisper folder"})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "pairs (or sft utterances) per step"})
    label_len: int = field(default=64, metadata={"help": "tokens of each transcript (chosen, rejected, sft)"})
    peft: Literal["lora", "adalora", "none"] = field(default="lora", metadata={"help": "as training's --peft"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "as training's option"})
    device: str | None = field(default=None, metadata={"help": "cpu | cuda[:N] (None: cuda when available)"})
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32", metadata={"help": "autocast dtype (CPU: float32 or bfloat16)"}
    )
    steps: int | None = field(
        default=None, metadata={"help": "measured steps, step time = their median (None: 5; sweep: by device)"}
    )
    warmup: int | None = field(
        default=None, metadata={"help": "unmeasured steps first, >= 1 for Adam's state (None: 2; sweep: 1)"}
    )
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (None: all cores)"})
    logps_chunk_size: int | None = field(default=None, metadata={"help": "packed engine's chunk (None: the engine's)"})
    checkpoint_decoder: bool = field(
        default=False, metadata={"help": "packed: recompute decoder layers (as training's option)"}
    )
    # This command's own.
    modes: str = field(default=",".join(MODES), metadata={"help": f"comma-separated subset of {','.join(MODES)}"})
    sweep: bool = field(default=False, metadata={"help": "compare over several batch sizes and label lengths"})
    sweep_batches: list[int] | None = field(default=None, metadata={"help": "e.g. 2,8,16 (None: by device)"})
    sweep_label_lens: list[int] | None = field(default=None, metadata={"help": "e.g. 32,64,128 (None: by device)"})
    candidates: list[int] | None = field(
        default=None,
        metadata={"help": "e.g. 2,4,8: per K, packed K blocks vs K full passes vs SFT, and DPO vs ORPO (targets)"},
    )
    find_max_batch: bool = field(default=False, metadata={"help": "largest batch of pairs that fits, per mode"})
    max_batch: int = field(default=4096, metadata={"help": "upper limit of --find_max_batch"})
    exact_cpu_peak: bool = field(
        default=False,
        metadata={
            "help": "CPU: run modes with a fixed glibc mmap threshold, so peak RSS follows live memory (reproducible)"
        },
    )
    output: str | None = field(default=None, metadata={"help": "write the results as JSON here"})
    # --mining (rlhf_asr.studies.bench.mining): decoding speed instead of training steps.
    mining: bool = field(
        default=False, metadata={"help": "clips/s of N-best mining, HF vs CTranslate2 (--model: real weights)"}
    )
    mining_data: str | None = field(
        default=None, metadata={"help": "--mining: ASR manifest (None: --mining_clips synthesized with espeak-ng)"}
    )
    mining_clips: int = field(default=16, metadata={"help": "--mining: clips decoded per backend"})
    num_candidates: int = field(default=4, metadata={"help": "--mining: beam width = candidates per clip"})
    mining_quantizations: list[str] = field(
        default_factory=lambda: ["int8", "float32"], metadata={"help": "--mining: CTranslate2 weight types"}
    )

    def __post_init__(self):
        check_positive(self, "per_device_train_batch_size", "label_len", "steps", "threads", "max_batch")
        check_positive(self, "mining_clips", "num_candidates")
        if self.candidates and min(self.candidates) < 2:
            raise UserInputError(f"--candidates {self.candidates}: every K must be >= 2 (K = 1 is sft's row)")


def build_parser():
    return options_parser(
        "rlhf-asr bench", [BenchOptions], __doc__.splitlines()[0], older={"batch_size": "per_device_train_batch_size"}
    )


def parse_args(argv: list[str]) -> BenchOptions:
    return parse_options(build_parser(), argv)[0]


def to_namespace(options: BenchOptions) -> argparse.Namespace:
    """The attributes `studies.bench.compare` / `bench.run.common_argv` read (batch_size: the per-mode flag)."""
    values = asdict(options)
    values["batch_size"] = values.pop("per_device_train_batch_size")
    # `candidates`: per measurement, `studies.bench.kbest` sets K (and the objective) on a copy.
    for key in ("modes", "sweep", "sweep_batches", "sweep_label_lens", "find_max_batch", "max_batch", "output"):
        values.pop(key)
    values.pop("candidates")
    return argparse.Namespace(**values)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.mining:
        return _mining(options, argv)
    modes = [OLDER_MODES.get(mode.strip(), mode.strip()) for mode in options.modes.split(",") if mode.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise UserInputError(f"unknown --modes {','.join(unknown)}: choose from {','.join(MODES)}")
    from rlhf_asr.studies.bench import compare
    from rlhf_asr.studies.bench.measure import machine_info
    from rlhf_asr.studies.bench.run import resolve_dtype
    from rlhf_asr.studies.bench.shapes import SHAPES

    args = to_namespace(options)
    if args.model not in SHAPES and not Path(args.model).expanduser().exists():
        log.info("--model %s is not a shape (%s): loading it as a checkpoint", args.model, ", ".join(SHAPES))
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.threads = args.threads or os.cpu_count()
    resolve_dtype(args)
    grid = SWEEP_GPU if args.device.startswith("cuda") else SWEEP_CPU
    default_steps, default_warmup = grid[2:] if options.sweep else (5, 2)
    args.steps = default_steps if args.steps is None else args.steps
    args.warmup = default_warmup if args.warmup is None else args.warmup

    keys = ("model", "batch_size", "label_len", "peft", "gradient_checkpointing", "dtype", "steps", "warmup")
    keys += ("threads", "logps_chunk_size", "checkpoint_decoder", "exact_cpu_peak")
    config = machine_info(args.device) | {key: getattr(args, key) for key in keys}
    config["command"] = "rlhf-asr bench " + " ".join(sys.argv[2:] if argv is None else argv)
    report: dict = {"config": config}
    if options.candidates:
        from rlhf_asr.studies.bench.kbest import kbest_table, measure_kbest

        report["kbest"] = measure_kbest(args, sorted(set(options.candidates)))
        print(kbest_table(report["kbest"]))
    elif options.find_max_batch:
        results = {mode: compare.find_max_batch(args, mode, options.max_batch) for mode in modes}
        report["max_batch"] = results
        print(compare.max_batch_table(results))
    elif options.sweep:
        batches, label_lens = options.sweep_batches or grid[0], options.sweep_label_lens or grid[1]
        report["sweep"] = compare.sweep(args, modes, batches, label_lens)
        print(compare.sweep_table(report["sweep"]))
    else:
        report["modes"] = compare.compare(args, modes)
        print(compare.markdown_table([({}, result) for result in report["modes"].values()]))
    report["config"]["load_average_end"] = machine_info(args.device)["load_average"]
    if options.output:
        Path(options.output).parent.mkdir(parents=True, exist_ok=True)
        Path(options.output).write_text(json.dumps(report, indent=2))
        log.info("wrote %s", options.output)
    return 0


def _mining(options: BenchOptions, argv: list[str] | None) -> int:
    """`--mining`: HF vs CTranslate2 N-best mining speed on the same clips (rlhf_asr.studies.bench.mining)."""
    import tempfile

    from rlhf_asr.model.ct2_export import QUANTIZATIONS
    from rlhf_asr.studies.bench.shapes import SHAPES

    if options.model in SHAPES:
        raise UserInputError(f"--mining needs real weights (a random {options.model} never stops): --model tiny.en")
    if unknown := sorted(set(options.mining_quantizations) - set(QUANTIZATIONS)):
        raise UserInputError(f"--mining_quantizations {','.join(unknown)}: choose from {','.join(QUANTIZATIONS)}")
    from rlhf_asr.studies.bench.measure import machine_info
    from rlhf_asr.studies.bench.mining import measure_mining, mining_table

    with tempfile.TemporaryDirectory(prefix="rlhf-asr-mining-") as scratch:
        manifest = options.mining_data
        if manifest is None:
            from rlhf_asr.studies.corpus import build_corpus
            from rlhf_asr.studies.options import SPEEDS, TRAIN_VOICES

            corpus = build_corpus(Path(scratch) / "clips", 0, options.mining_clips, TRAIN_VOICES, [], SPEEDS)
            manifest = corpus.manifest("test")
        report = measure_mining(
            options.model,
            manifest,
            scratch,
            num_candidates=options.num_candidates,
            clips=options.mining_clips,
            batch_size=options.per_device_train_batch_size,
            quantizations=tuple(options.mining_quantizations),
            threads=options.threads,
        )
    import ctranslate2

    report["config"] |= machine_info("cpu") | {"ctranslate2_version": ctranslate2.__version__}
    report["config"]["command"] = "rlhf-asr bench " + " ".join(sys.argv[2:] if argv is None else argv)
    print(mining_table(report))
    if options.output:
        Path(options.output).parent.mkdir(parents=True, exist_ok=True)
        Path(options.output).write_text(json.dumps(report, indent=2))
        log.info("wrote %s", options.output)
    return 0
