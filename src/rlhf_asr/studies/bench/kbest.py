"""`rlhf-asr bench --candidates 2,4,8`: K candidates per clip, packed against K full passes and SFT.

Per K, in one run (so the ratios share one machine state), each measurement in its own process
(`compare.run_mode`, a full training step as `run.py` times it):
- `packed_kK`: the packed engine (mode `packed`): one encoder pass, the K candidates as K blocks of one
  decoder pass, then the objective over the K sums (ORPO at K = 2, MWER above it);
- `naive_kK`: the whole model once per candidate (the encoder K times), same objective: what an
  implementation that scores each sequence separately (as TRL's trainers do) costs;
- `sft`: one forward on the reference alone, measured once (it has no K).
Beside them `dpo_k2`: the packed pair under DPO, its reference log-probs stored (a tensor in the
batch, no reference forward), against `packed_k2` under ORPO.

The targets (issue 25) are benchmark targets, checked here and reported as pass/fail beside the
numbers, never asserted by tests: memory ratios are exact, time ratios move with the machine's load.
"""

from __future__ import annotations

import argparse
import copy
import logging
from dataclasses import dataclass

from rlhf_asr.studies.bench.candidates import default_objective
from rlhf_asr.studies.bench.compare import brief, run_mode

logger = logging.getLogger(__name__)

METRICS = {"peak": "peak_mem_mb", "step": "step_s"}


@dataclass(frozen=True)
class Target:
    """`row`'s `metric` over `against`'s, within [low, high]."""

    text: str
    row: str
    against: str
    metric: str  # a key of METRICS
    low: float
    high: float


TARGETS = (
    Target("K=4 packed peak <= 1.5 x sft", "packed_k4", "sft", "peak", 0.0, 1.5),
    Target("K=4 packed peak <= 0.40 x naive K passes", "packed_k4", "naive_k4", "peak", 0.0, 0.40),
    Target("K=4 packed step <= 1.6 x sft", "packed_k4", "sft", "step", 0.0, 1.6),
    Target("DPO (stored reference) peak within 5% of ORPO, K=2 packed", "dpo_k2", "packed_k2", "peak", 0.95, 1.05),
    Target("DPO (stored reference) step within 5% of ORPO, K=2 packed", "dpo_k2", "packed_k2", "step", 0.95, 1.05),
)


def plan(ks: list[int]) -> dict[str, tuple[str, int | None, str | None]]:
    """Row name -> (bench mode, K, objective), in running order."""
    rows: dict[str, tuple[str, int | None, str | None]] = {"sft": ("sft", None, None)}
    for k in [*ks, 2]:  # K = 2 packed under ORPO is DPO's comparison, asked for or not
        rows[f"packed_k{k}"] = ("packed", k, default_objective(k))
        if k in ks:
            rows[f"naive_k{k}"] = ("naive", k, default_objective(k))
    rows["dpo_k2"] = ("packed", 2, "dpo")
    return rows


def measure_kbest(args: argparse.Namespace, ks: list[int]) -> dict:
    """Every row of `plan(ks)` measured; their ratios and the targets' verdicts."""
    rows = {}
    for name, (mode, k, objective) in plan(ks).items():
        point = copy.copy(args)
        point.candidates, point.objective = k, objective
        rows[name] = run_mode(mode, point) | {"row": name, "candidates": k, "objective": objective}
        logger.info(f"bench: {name}: {brief(rows[name])}")
    return {"rows": rows, "ratios": ratios(rows, ks), "targets": verdicts(rows)}


def ratio(rows: dict[str, dict], row: str, against: str, metric: str) -> float | None:
    """`row`'s metric over `against`'s; None unless both were measured."""
    a, b = rows.get(row, {}), rows.get(against, {})
    if a.get("status") != "ok" or b.get("status") != "ok":
        return None
    return round(a[METRICS[metric]] / b[METRICS[metric]], 3)


def ratios(rows: dict[str, dict], ks: list[int]) -> list[dict]:
    """Per K: packed over sft and over naive, naive over sft, peak and step."""
    out = []
    for k in ks:
        packed, naive = f"packed_k{k}", f"naive_k{k}"
        entry: dict = {"candidates": k, "objective": default_objective(k)}
        for metric in METRICS:
            entry[f"{metric}_packed_vs_sft"] = ratio(rows, packed, "sft", metric)
            entry[f"{metric}_packed_vs_naive"] = ratio(rows, packed, naive, metric)
            entry[f"{metric}_naive_vs_sft"] = ratio(rows, naive, "sft", metric)
        out.append(entry)
    return out


def verdicts(rows: dict[str, dict]) -> list[dict]:
    """Each target with its measured ratio and `met` (None: a row it needs was not measured)."""
    out = []
    for target in TARGETS:
        value = ratio(rows, target.row, target.against, target.metric)
        met = None if value is None else target.low <= value <= target.high
        out.append({"target": target.text, "value": value, "low": target.low, "high": target.high, "met": met})
    return out


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _measured(rows: dict[str, dict], name: str, metric: str, digits: int) -> str:
    row = rows.get(name, {})
    return _cell(row.get(METRICS[metric]), digits) if row.get("status") == "ok" else row.get("status", "-")


def kbest_table(report: dict) -> str:
    """The K table, DPO against ORPO, and one PASS / FAIL line per target."""
    rows = report["rows"]
    header = ["K", "objective", "packed MB", "naive MB", "sft MB", "peak x sft", "peak x naive", "naive x sft"]
    header += ["packed s", "naive s", "sft s", "step x sft", "step x naive", "naive x sft"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in report["ratios"]:
        k = entry["candidates"]
        cells = [str(k), entry["objective"]]
        for metric, digits in (("peak", 0), ("step", 3)):
            cells += [_measured(rows, name, metric, digits) for name in (f"packed_k{k}", f"naive_k{k}", "sft")]
            cells += [_cell(entry[f"{metric}_{key}"]) for key in ("packed_vs_sft", "packed_vs_naive", "naive_vs_sft")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| K = 2 packed | peak MB | step s | peak x orpo | step x orpo |", "|---|---|---|---|---|"]
    for name in ("packed_k2", "dpo_k2"):
        cells = [_measured(rows, name, "peak", 0), _measured(rows, name, "step", 3)]
        cells += [_cell(ratio(rows, name, "packed_k2", metric), 3) for metric in METRICS]
        lines.append(f"| {rows[name]['objective']} | " + " | ".join(cells) + " |")
    lines.append("")
    for verdict in report["targets"]:
        state = {True: "PASS", False: "FAIL", None: "NOT MEASURED"}[verdict["met"]]
        lines.append(f"target {verdict['target']}: {_cell(verdict['value'], 3)} {state}")
    return "\n".join(lines)
