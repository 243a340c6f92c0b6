"""One benchmark mode in one process: build, warm up, then time and measure full training steps.

Run by `rlhf-asr bench` as `python -m rlhf_asr.studies.bench.run --mode MODE ... --output FILE.json`, one
fresh process per mode, so no mode inherits another's allocator cache or peak.

A step is what training does per batch: forward, loss (ORPO, or the plain cross-entropy for
`sft`), backward, optimizer step, zero_grad. The batch is synthetic (random features, random
token ids of exactly `--label_len` tokens), so every mode sees the same shapes. With
`--candidates K` the batch holds K candidates per clip and the loss is `--objective`'s over
`forward_candidates` (candidates.py); `sft` ignores it (the reference alone).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import torch

from rlhf_asr.studies.bench.batches import candidate_batch, synthetic_batch
from rlhf_asr.studies.bench.candidates import candidate_loss, default_objective
from rlhf_asr.studies.bench.measure import median, peak_meter, settle
from rlhf_asr.studies.bench.shapes import build_model

logger = logging.getLogger(__name__)

MODES = ("sft", "naive", "concat", "packed", "packed_frozen")
# benchmark mode -> PreferenceWhisper mode; `packed_frozen` also freezes the encoder.
ENGINE_MODES = {"naive": "naive", "concat": "concat", "packed": "packed", "packed_frozen": "packed"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
EXIT_OOM = 3


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by the parent command and the per-mode process (one definition for both)."""
    parser.add_argument("--model", default="tiny", help="tiny | base | small | medium | large-v3 | a Whisper folder")
    parser.add_argument("--batch_size", type=int, default=8, help="pairs (or sft utterances) per step")
    parser.add_argument("--label_len", type=int, default=64, help="tokens of each transcript (chosen, rejected, sft)")
    parser.add_argument("--peft", choices=["lora", "adalora", "none"], default="lora")
    parser.add_argument("--gradient_checkpointing", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu | cuda[:N]")
    parser.add_argument(
        "--dtype", choices=list(DTYPES), default="float32", help="autocast dtype (CPU: float32 or bfloat16)"
    )
    parser.add_argument("--steps", type=int, default=5, help="measured steps (step time = their median)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps first (>= 1: Adam's state)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads (default: all cores)")
    parser.add_argument("--logps_chunk_size", type=int, default=None, help="packed engine's chunk (default: engine's)")
    parser.add_argument(
        "--checkpoint_decoder", action="store_true", help="packed: recompute decoder layers (as training's option)"
    )


def add_candidate_args(parser: argparse.ArgumentParser) -> None:
    """The per-mode process's K-best options (the parent's `--candidates` is a list of K)."""
    parser.add_argument("--candidates", type=int, default=None, help="K candidates per clip (None: pairs)")
    parser.add_argument("--objective", default=None, help="K-best loss (None: orpo at K = 2, mwer above)")


def common_argv(args: argparse.Namespace) -> list[str]:
    """The command line that reproduces `args`' common options in a child process."""
    argv = [
        "--model", args.model, "--batch_size", str(args.batch_size), "--label_len", str(args.label_len),
        "--peft", args.peft, "--device", args.device, "--dtype", args.dtype, "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--threads", str(args.threads),
    ]  # fmt: skip
    if args.logps_chunk_size:
        argv += ["--logps_chunk_size", str(args.logps_chunk_size)]
    argv += ["--checkpoint_decoder"] if args.checkpoint_decoder else []
    if getattr(args, "candidates", None):
        argv += ["--candidates", str(args.candidates)]
        argv += ["--objective", args.objective or default_objective(args.candidates)]
    return argv + (["--gradient_checkpointing"] if args.gradient_checkpointing else [])


def resolve_dtype(args: argparse.Namespace) -> None:
    """Sets the autocast dtype actually used, with one line when it differs: CPU has no float16 path worth timing."""
    if args.dtype == "float16" and not args.device.startswith("cuda"):
        logger.warning(f"bench: --dtype {args.dtype} is CUDA-only: CPU runs in float32")
        args.dtype = "float32"


def build(args: argparse.Namespace, total_steps: int):
    """(model, engine or None, optimizer): the model wrapped as training wraps it."""
    from rlhf_asr.model.engine import PreferenceWhisper
    from rlhf_asr.model.peft_setup import apply_peft
    from rlhf_asr.trainer.config import ModelArguments

    frozen = args.mode == "packed_frozen"
    if getattr(args, "load_in_8bit", False):  # a saved checkpoint, loaded in 8 bits as `--use_8bit` loads it
        from rlhf_asr.model.peft_setup import load_training_model

        model = load_training_model(args.model, use_8bit=True)
    else:
        model = build_model(args.model, args.device)
    # Same PEFT set-up as training, defaults included (LoRA r=32 on all projections; decoder only when frozen).
    model = apply_peft(model, ModelArguments(peft=args.peft, freeze_encoder=frozen), total_steps)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    engine = None
    if args.mode != "sft":
        chunk = {"logps_chunk_size": args.logps_chunk_size} if args.logps_chunk_size else {}
        engine = PreferenceWhisper(
            model,
            mode=ENGINE_MODES[args.mode],
            freeze_encoder=frozen,
            checkpoint_decoder=args.checkpoint_decoder,
            **chunk,
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    return model, engine, optimizer


def is_kbest(args: argparse.Namespace) -> bool:
    """A K-best measurement (`--candidates K`): K candidates per clip, an objective over them (not `sft`)."""
    return getattr(args, "candidates", None) is not None and args.mode != "sft"


def make_step(args, model, engine, optimizer, batch):
    """A closure running one full training step and returning the loss."""
    from rlhf_asr.loss.orpo import orpo_loss

    dtype = DTYPES[args.dtype]
    device_type = torch.device(args.device).type
    use_autocast = dtype != torch.float32
    scaler = torch.amp.GradScaler(device_type) if use_autocast and dtype == torch.float16 else None
    adalora = args.peft == "adalora"
    counter = {"step": 0}
    kbest = candidate_loss(engine, args.objective) if engine is not None and is_kbest(args) else None

    def step() -> float:
        autocast = torch.autocast(device_type, dtype=dtype) if use_autocast else contextlib.nullcontext()
        with autocast:
            if engine is None:
                loss = model(input_features=batch["input_features"], labels=batch["chosen_labels"]).loss
            elif kbest is not None:
                loss = kbest(batch)
            else:
                out = engine(**batch)
                logps = (out["chosen_logps"], out["chosen_tokens"], out["rejected_logps"], out["rejected_tokens"])
                loss = orpo_loss(*logps).loss
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        counter["step"] += 1
        if adalora:  # as AdaLoraCallback does in training: after the step, gradients still present
            model.base_model.update_and_allocate(counter["step"])
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def _usage_delta(before, after) -> tuple[float, float, int]:
    """(user s, system s, minor page faults) between two getrusage() readings."""
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt


def measure(args: argparse.Namespace) -> dict:
    """Warm-up steps, baseline, then `--steps` measured steps; returns the result record."""
    torch.set_num_threads(args.threads)
    warmup = max(1, args.warmup)
    model, engine, optimizer = build(args, warmup + args.steps)
    if is_kbest(args):
        batch = candidate_batch(model.config, args.batch_size, args.candidates, args.label_len, args.device)
    else:
        batch = synthetic_batch(model.config, args.batch_size, args.label_len, args.device)
    step = make_step(args, model, engine, optimizer, batch)
    meter = peak_meter(args.device)
    try:
        for _ in range(warmup):
            step()
        gc.collect()
        settle(args.device)
        baseline = meter.current_mb()  # model + optimizer + Adam state, same for every mode
        times, peaks, losses, usage = [], [], [], []
        for _ in range(args.steps):
            # No allocator trim between steps: training keeps freed pages too, and re-faulting
            # them (expensive in VMs) would be charged to the step.
            gc.collect()
            meter.reset()
            start, usage_start = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            losses.append(step())
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            usage.append(_usage_delta(usage_start, resource.getrusage(resource.RUSAGE_SELF)))
            peaks.append(meter.peak_mb() - baseline)
    finally:
        meter.close()
    return {
        "mode": args.mode,
        "status": "ok",
        "peak_mem_mb": round(max(peaks), 1),
        "step_s": round(median(times), 4),
        "step_times_s": [round(t, 4) for t in times],
        # Process CPU time, split: user = compute; sys = mostly page faults (costly in VMs, where
        # first-touched memory is faulted in by the host). Helps to read noisy wall times.
        "step_user_s": round(median([u[0] for u in usage]), 4),
        "step_sys_s": round(median([u[1] for u in usage]), 4),
        "step_page_faults": int(median([u[2] for u in usage])),
        "step_peaks_mb": [round(p, 1) for p in peaks],
        "baseline_mb": round(baseline, 1),
        "memory_method": meter.method,
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "loss": losses[-1],
        "batch_size": args.batch_size,
        "label_len": args.label_len,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
    } | ({"candidates": args.candidates, "objective": args.objective} if is_kbest(args) else {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlhf_asr.studies.bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--output", required=True, help="JSON file for the result record")
    add_common_args(parser)
    add_candidate_args(parser)
    args = parser.parse_args(argv)
    if is_kbest(args):
        args.objective = args.objective or default_objective(args.candidates)
    resolve_dtype(args)
    try:
        result, code = measure(args), 0
    except torch.OutOfMemoryError as error:
        result, code = {"mode": args.mode, "status": "oom", "error": str(error).splitlines()[0]}, EXIT_OOM
    except Exception as error:  # reported in the table, not a crash of the whole comparison
        traceback.print_exc()
        result, code = {"mode": args.mode, "status": "failed", "error": f"{type(error).__name__}: {error}"}, 1
    Path(args.output).write_text(json.dumps(result, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
