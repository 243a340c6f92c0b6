"""`rlhf-asr bench`: peak memory and step time of sft / naive / concat / ours / ours_frozen.

Thin wrapper: options here, one process per mode in `rlhf_asr.bench.run`, tables and searches in
`rlhf_asr.bench.compare`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Default sweeps, (batches, label lengths, steps, warm-up steps): a GPU takes the full grid; a CPU
# (a step of tiny at batch 8 takes 20-60 s on two shared cores) a grid that ends in about ten minutes.
SWEEP_GPU = ([2, 8, 16], [32, 64, 128], 3, 1)
SWEEP_CPU = ([2, 4], [32, 128], 1, 1)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    from rlhf_asr.bench.run import MODES, add_common_args
    from rlhf_asr.commands.parser import CommandParser

    parser = CommandParser(prog="rlhf-asr bench", description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.set_defaults(steps=None, warmup=None)  # defaults depend on --sweep / --find_max_batch
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--sweep", action="store_true", help="compare over several batch sizes and label lengths")
    parser.add_argument("--sweep_batches", type=_ints, default=None, help="e.g. 2,8,16 (default: by device)")
    parser.add_argument("--sweep_label_lens", type=_ints, default=None, help="e.g. 32,64,128 (default: by device)")
    parser.add_argument("--find_max_batch", action="store_true", help="largest batch of pairs that fits, per mode")
    parser.add_argument("--max_batch", type=int, default=4096, help="upper limit of --find_max_batch")
    parser.add_argument(
        "--exact_cpu_peak", action="store_true",
        help="CPU: run modes with a fixed glibc mmap threshold, so peak RSS follows live memory (reproducible)",
    )
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    from rlhf_asr.bench import compare
    from rlhf_asr.bench.measure import machine_info
    from rlhf_asr.bench.run import MODES, resolve_dtype
    from rlhf_asr.bench.shapes import SHAPES
    from rlhf_asr.errors import UserInputError

    args = build_parser().parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise UserInputError(f"unknown --modes {','.join(unknown)}: choose from {','.join(MODES)}")
    if args.model not in SHAPES and not args.model.startswith("test-") and not Path(args.model).expanduser().exists():
        print(f"[rlhf-asr bench] --model {args.model} is not a shape ({', '.join(SHAPES)}): loading it as a checkpoint")
    resolve_dtype(args)
    grid = SWEEP_GPU if args.device.startswith("cuda") else SWEEP_CPU
    default_steps, default_warmup = grid[2:] if args.sweep else (5, 2)
    args.steps = default_steps if args.steps is None else args.steps
    args.warmup = default_warmup if args.warmup is None else args.warmup

    options = ("model", "batch_size", "label_len", "peft", "gradient_checkpointing", "dtype", "steps", "warmup")
    options += ("threads", "logps_chunk_size", "checkpoint_decoder", "exact_cpu_peak")
    config = machine_info(args.device) | {key: getattr(args, key) for key in options}
    config["command"] = "rlhf-asr bench " + " ".join(sys.argv[2:] if argv is None else argv)
    report: dict = {"config": config}
    if args.find_max_batch:
        results = {mode: compare.find_max_batch(args, mode, args.max_batch) for mode in modes}
        report["max_batch"] = results
        print(compare.max_batch_table(results))
    elif args.sweep:
        batches, label_lens = args.sweep_batches or grid[0], args.sweep_label_lens or grid[1]
        report["sweep"] = compare.sweep(args, modes, batches, label_lens)
        print(compare.sweep_table(report["sweep"]))
    else:
        report["modes"] = compare.compare(args, modes)
        print(compare.markdown_table([({}, result) for result in report["modes"].values()]))
    report["config"]["load_average_end"] = machine_info(args.device)["load_average"]
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2))
        print(f"[rlhf-asr bench] wrote {args.output}")
    return 0
