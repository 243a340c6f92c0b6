"""The parent side of `rlhf-asr bench`: one fresh process per mode, results side by side.

A fresh process per mode matters on CPU: the C allocator keeps freed pages, so a mode run after
another would start with the previous mode's high-water mark already resident. A mode that fails
(out of memory, killed, an error) is recorded with its reason, and the others still run.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rlhf_asr.studies.bench.measure import rss_mb
from rlhf_asr.studies.bench.run import common_argv

logger = logging.getLogger(__name__)

_LOG_TAIL_LINES = 15
# With a fixed threshold glibc gives every block of 128 KiB or more its own mapping and returns it
# when freed, so resident memory follows live memory and the peak no longer depends on how earlier
# steps fragmented the heap. glibc's default (a threshold that grows as blocks are freed) keeps
# freed memory and gives peaks that vary by several hundred MB from run to run.
EXACT_MMAP_THRESHOLD = 128 * 1024


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    """Result record of one mode, measured in a child process (never raises for a failed mode)."""
    with tempfile.TemporaryDirectory(prefix="rlhf-asr-bench-") as tmp:
        output = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "rlhf_asr.studies.bench.run", "--mode", mode, "--output", str(output)]
        command += common_argv(args)
        env = dict(os.environ)
        if getattr(args, "exact_cpu_peak", False):
            env["MALLOC_MMAP_THRESHOLD_"] = str(EXACT_MMAP_THRESHOLD)
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if output.exists():
            result = json.loads(output.read_text())
        else:  # killed before it could write, e.g. by the kernel's OOM killer (-9)
            reason = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            result = {"mode": mode, "status": "killed" if proc.returncode < 0 else "failed", "error": reason}
    if result["status"] != "ok":
        result["log_tail"] = (proc.stdout + proc.stderr).strip().splitlines()[-_LOG_TAIL_LINES:]
    return result


def compare(args: argparse.Namespace, modes: list[str], label: str = "") -> dict[str, dict]:
    """mode -> result record, with ratios to `naive` and `sft` where those ran."""
    results = {}
    for mode in modes:
        results[mode] = run_mode(mode, args)
        logger.info(f"bench: {label}{mode}: {brief(results[mode])}")
    add_ratios(results)
    return results


def brief(result: dict) -> str:
    if result["status"] != "ok":
        return f"{result['status']} ({result.get('error', '')})"
    return f"peak {result['peak_mem_mb']:.0f} MB, step {result['step_s']:.3f} s"


def add_ratios(results: dict[str, dict]) -> None:
    for reference in ("naive", "sft"):
        ref = results.get(reference)
        if not ref or ref["status"] != "ok":
            continue
        for result in results.values():
            if result["status"] == "ok":
                result[f"peak_vs_{reference}"] = round(result["peak_mem_mb"] / ref["peak_mem_mb"], 3)
                result[f"step_vs_{reference}"] = round(result["step_s"] / ref["step_s"], 3)


def _ratio(result: dict, key: str) -> str:
    return f"{result[key]:.2f}" if key in result else "-"


def markdown_table(rows: list[tuple[dict, dict]]) -> str:
    """One line per (leading columns, result record); the leading columns name the configuration."""
    lead = list(rows[0][0]) if rows else []
    header = lead + ["mode", "peak MB", "x naive", "x sft", "step s", "x naive", "x sft"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for columns, result in rows:
        if result["status"] == "ok":
            cells = [
                f"{result['peak_mem_mb']:.0f}", _ratio(result, "peak_vs_naive"), _ratio(result, "peak_vs_sft"),
                f"{result['step_s']:.3f}", _ratio(result, "step_vs_naive"), _ratio(result, "step_vs_sft"),
            ]  # fmt: skip
        else:
            cells = [result["status"], "-", "-", "-", "-", "-"]
        lines.append("| " + " | ".join([str(v) for v in columns.values()] + [result["mode"]] + cells) + " |")
    return "\n".join(lines)


def sweep(args: argparse.Namespace, modes: list[str], batches: list[int], label_lens: list[int]) -> list[dict]:
    """One comparison per (batch size, label length)."""
    rows = []
    for batch in batches:
        for label_len in label_lens:
            point = copy.copy(args)
            point.batch_size, point.label_len = batch, label_len
            results = compare(point, modes, label=f"b{batch} l{label_len} ")
            rows.append({"batch_size": batch, "label_len": label_len, "modes": results})
    return rows


def sweep_table(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        lines += [
            ({"batch": row["batch_size"], "label_len": row["label_len"]}, result) for result in row["modes"].values()
        ]
    return markdown_table(lines)


def available_mb() -> float:
    """MemAvailable of the machine, in MiB (the CPU batch search must not push others into the OOM killer)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def find_max_batch(args: argparse.Namespace, mode: str, limit: int) -> dict:
    """Largest batch of pairs whose step fits: doubling until a failure, then bisection.

    On CUDA "fits" means no out-of-memory error. On CPU running out of memory means the kernel's
    OOM killer on a shared machine, so a batch fits only while its resident total stays under 80%
    of the memory available at the start, and a batch predicted (linearly) to exceed that is not run.
    """
    cpu = not args.device.startswith("cuda")
    budget = 0.8 * (available_mb() + rss_mb()) if cpu else float("inf")
    probes: dict[int, dict] = {}
    per_pair = 0.0

    def fits(batch: int) -> bool:
        nonlocal per_pair
        if cpu and per_pair and per_pair * batch > budget:
            return False
        point = copy.copy(args)
        point.batch_size, point.steps, point.warmup = batch, 1, 1
        result = probes[batch] = run_mode(mode, point)
        logger.info(f"bench: max batch {mode} b{batch}: {brief(result)}")
        if result["status"] == "failed" and "out of memory" not in str(result.get("error", "")).lower():
            raise RuntimeError(f"{mode} at batch {batch}: {result.get('error')}")
        if result["status"] != "ok":
            return False
        total = result["baseline_mb"] + result["peak_mem_mb"]
        per_pair = max(per_pair, total / batch)
        return total <= budget

    good, bad = 0, None
    batch = 1
    try:
        while batch <= limit:
            if not fits(batch):
                bad = batch
                break
            good, batch = batch, batch * 2
        upper = bad if bad is not None else limit + 1
        while bad is not None and upper - good > 1:
            middle = (good + upper) // 2
            good, upper = (middle, upper) if fits(middle) else (good, middle)
    except RuntimeError as error:
        return {"mode": mode, "status": "failed", "error": str(error), "max_batch": good}
    best = probes.get(good, {})
    return {
        "mode": mode,
        "status": "ok",
        "max_batch": good,
        "capped": bad is None,  # every batch up to the limit fitted
        "peak_mem_mb": best.get("peak_mem_mb"),
        "step_s": best.get("step_s"),
        "probes": {b: p["status"] for b, p in sorted(probes.items())},
    }


def max_batch_table(results: dict[str, dict]) -> str:
    lines = ["| mode | max batch | x naive | x sft |", "|---|---|---|---|"]
    for mode, result in results.items():
        cells = [str(result["max_batch"]) + ("+" if result.get("capped") else "")]
        for reference in ("naive", "sft"):
            ref = results.get(reference, {}).get("max_batch")
            cells.append(f"{result['max_batch'] / ref:.2f}" if ref else "-")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
