"""Largest batch of pairs per mode on CUDA, found in one process per model and precision.

`rlhf-asr bench --find_max_batch` on CPU runs every probe in a fresh process (the C allocator
keeps freed pages). On CUDA the caching allocator's peak is exact and resettable, and an
out-of-memory error is an ordinary exception, so this search probes in-process: the model is
built once per mode, one step runs per probe, and the search starts from a linear prediction
(memory per pair measured at batch 1 and 2) instead of doubling from 1, which keeps a large-v3
search to a handful of steps.

Precisions, as training runs them:
- `bf16`: fp32 weights, bf16 autocast (`--bf16 True`).
- `fp16`: fp32 weights, fp16 autocast and a gradient scaler (`--fp16 True`).
- `int8`: base weights in 8 bits (bitsandbytes `Linear8bitLt`, `--use_8bit True`), LoRA in fp32,
  bf16 autocast.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from rlhf_asr.studies.bench.run import DTYPES, MODES, build, make_step

logger = logging.getLogger("rlhf_asr.studies.bench.capacity")
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "int8": "bfloat16"}  # precision -> autocast dtype
MAX_PROBES = 9


def cuda_batch(config, batch: int, label_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """`run.synthetic_batch`, generated on the GPU (a CPU randn of 2000 x 80 x 3000 takes seconds)."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    high = min(config.vocab_size, 50257)

    def transcript() -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, high, (batch, label_len), generator=gen, device="cuda")
        start = torch.full((batch, 1), config.decoder_start_token_id, device="cuda")
        return torch.cat([start, labels[:, :-1]], dim=1), labels

    features = torch.randn(batch, config.num_mel_bins, 2 * config.max_source_positions, generator=gen, device="cuda")
    chosen_ids, chosen_labels = transcript()
    rejected_ids, rejected_labels = transcript()
    return {
        "input_features": features,
        "chosen_input_ids": chosen_ids,
        "chosen_labels": chosen_labels,
        "rejected_input_ids": rejected_ids,
        "rejected_labels": rejected_labels,
    }


class Prober:
    """Runs one training step at a given batch size; None when it does not fit."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.model, self.engine, self.optimizer = build(args, total_steps=1000)
        self.config = self.model.config
        self.records: dict[int, dict] = {}

    def __call__(self, batch_size: int) -> dict | None:
        batch = None
        try:
            batch = cuda_batch(self.config, batch_size, self.args.label_len)
            step = make_step(self.args, self.model, self.engine, self.optimizer, batch)
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            loss = step()
            torch.cuda.synchronize()
            record = {
                "status": "ok",
                "step_s": round(time.perf_counter() - start, 4),
                "peak_mb": round((torch.cuda.max_memory_allocated() - base) / 2**20, 1),
                "loss": loss,
            }
        except torch.OutOfMemoryError:
            record = {"status": "oom"}
        finally:
            del batch
            self.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
        self.records[batch_size] = record
        logger.info("  b%d: %s", batch_size, record)
        return record if record["status"] == "ok" else None

    def close(self) -> None:
        del self.model, self.engine, self.optimizer
        gc.collect()
        torch.cuda.empty_cache()


def search(prober: Prober) -> dict:
    """Largest fitting batch within ~5 %: predicted from batch 1 -> 2, then bracketed and bisected."""
    prober(1)  # warm-up: creates Adam's state, so later probes measure the step alone
    one, two = prober(1), prober(2)
    if one is None:
        return {"max_batch": 0, "probes": prober.records}
    if two is None:
        return {"max_batch": 1, "probes": prober.records}
    per_pair = max(two["peak_mb"] - one["peak_mb"], 1.0)
    free_mb = torch.cuda.mem_get_info()[0] / 2**20
    guess = max(3, int((free_mb - one["peak_mb"]) / per_pair) + 1)
    good, bad = 2, None
    probes = 3
    while bad is None and probes < MAX_PROBES:  # bracket: the guess, then 10 % steps up
        if prober(guess):
            good, guess = guess, max(guess + 1, int(guess * 1.1))
        else:
            bad = guess
        probes += 1
    while bad is not None and bad - good > max(1, good // 20) and probes < MAX_PROBES:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if prober(middle) else (good, middle)
        probes += 1
    best = prober.records[good]
    return {
        "max_batch": good,
        "first_failing": bad,
        "per_pair_mb_b1_b2": round(per_pair, 1),
        "peak_mb": best.get("peak_mb"),
        "step_s": best.get("step_s"),
        "pairs_per_s": round(good / best["step_s"], 2) if best.get("step_s") else None,
        "probes": {str(b): r["status"] for b, r in sorted(prober.records.items())},
    }


def int8_checkpoint(model: str, folder: Path) -> str:
    """A random model of the named shape saved in fp16, for bitsandbytes to load in 8 bits."""
    from rlhf_asr.studies.bench.shapes import build_model

    built = build_model(model, "cuda").half()
    built.save_pretrained(folder)
    del built
    torch.cuda.empty_cache()
    return str(folder)


def run(
    models: list[str],
    precisions: list[str],
    modes: dict[str, list[str]],
    label_len: int,
    output: Path,
    deadline: float,
    checkpoint_decoder: bool = False,
):
    report: dict = {
        "device": torch.cuda.get_device_name(),
        "label_len": label_len,
        "checkpoint_decoder": checkpoint_decoder,
    }
    report["results"] = {}
    report["total_mb"] = round(torch.cuda.mem_get_info()[1] / 2**20)
    for precision in precisions:
        for model in models:
            with tempfile.TemporaryDirectory() as tmp:
                source = int8_checkpoint(model, Path(tmp)) if precision == "int8" else model
                for mode in modes[precision]:
                    key = f"{model}/{precision}/{mode}"
                    if time.time() > deadline:
                        report["results"][key] = {"status": "skipped (time)"}
                        continue
                    args = argparse.Namespace(
                        mode=mode,
                        model=source,
                        peft="lora",
                        gradient_checkpointing=False,
                        device="cuda",
                        dtype=PRECISIONS[precision],
                        label_len=label_len,
                        logps_chunk_size=None,
                        checkpoint_decoder=checkpoint_decoder,
                        load_in_8bit=precision == "int8",
                    )
                    logger.info("%s", key)
                    started = time.time()
                    try:
                        prober = Prober(args)
                        result = search(prober) | {"status": "ok"}
                        prober.close()
                    except Exception as error:  # recorded, the other searches go on
                        logger.exception("%s failed", key)
                        result = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:500]}
                    result["search_s"] = round(time.time() - started, 1)
                    report["results"][key] = result
                    output.write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlhf_asr.studies.bench.capacity", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", default="small,large-v3")
    parser.add_argument("--precisions", default="bf16,fp16,int8")
    parser.add_argument("--modes", default=",".join(MODES), help="modes for bf16")
    parser.add_argument("--other_modes", default="sft,naive,packed", help="modes for fp16 and int8")
    parser.add_argument("--label_len", type=int, default=64)
    parser.add_argument("--time_limit_s", type=float, default=480.0, help="searches not started by then are skipped")
    parser.add_argument(
        "--checkpoint_decoder", action="store_true", help="recompute decoder layers (training's option)"
    )
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    assert set(PRECISIONS) >= set(args.precisions.split(","))
    modes = {p: (args.modes if p == "bf16" else args.other_modes).split(",") for p in PRECISIONS}
    assert all(m in MODES for ms in modes.values() for m in ms) and DTYPES
    report = run(
        args.models.split(","),
        args.precisions.split(","),
        modes,
        args.label_len,
        Path(args.output),
        time.time() + args.time_limit_s,
        args.checkpoint_decoder,
    )
    Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
