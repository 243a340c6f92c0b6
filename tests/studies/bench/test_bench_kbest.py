"""`rlhf-asr bench --candidates`: the K-best rows, their ratios and target lines (no timings asserted).

That packed K blocks and K full passes give the same log-probs and gradients is the engine's
correctness (tests/model/test_engine_kblock.py); here only that the bench's step runs the same maths in
both engines: the same loss from the same synthetic K-best batch.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.model.engine import PreferenceWhisper
from rlhf_asr.studies.bench.batches import candidate_batch
from rlhf_asr.studies.bench.candidates import candidate_loss
from rlhf_asr.studies.bench.kbest import TARGETS, kbest_table, plan, ratios, verdicts
from rlhf_asr.studies.bench.run import common_argv
from rlhf_asr.studies.bench.shapes import build_model
from whisper_fixtures import make_tiny_whisper_dir


def _row(peak: float, step: float, objective: str | None = None) -> dict:
    return {"status": "ok", "peak_mem_mb": peak, "step_s": step, "objective": objective}


def test_plan_runs_sft_once_and_dpo_beside_an_orpo_pair():
    rows = plan([4, 8])
    assert rows["sft"] == ("sft", None, None)
    assert rows["packed_k4"] == ("packed", 4, "mwer") and rows["naive_k8"] == ("naive", 8, "mwer")
    assert rows["packed_k2"] == ("packed", 2, "orpo") and "naive_k2" not in rows  # DPO's comparison only
    assert rows["dpo_k2"] == ("packed", 2, "dpo")


def test_ratios_and_targets_from_measured_rows():
    rows = {
        "sft": _row(100, 1.0),
        "packed_k2": _row(110, 1.1, "orpo"),
        "naive_k2": _row(200, 2.0, "orpo"),
        "packed_k4": _row(120, 1.2, "mwer"),
        "naive_k4": _row(400, 4.0, "mwer"),
        "dpo_k2": _row(112, 1.3, "dpo"),
    }
    (k2, k4) = ratios(rows, [2, 4])
    assert k4["peak_packed_vs_sft"] == 1.2 and k4["peak_packed_vs_naive"] == 0.3 and k4["step_naive_vs_sft"] == 4.0
    met = {v["target"]: v["met"] for v in verdicts(rows)}
    assert len(met) == len(TARGETS)
    assert met["K=4 packed peak <= 0.40 x naive K passes"] is True
    assert met["DPO (stored reference) peak within 5% of ORPO, K=2 packed"] is True  # 112 / 110
    assert met["DPO (stored reference) step within 5% of ORPO, K=2 packed"] is False  # 1.3 / 1.1
    table = kbest_table({"rows": rows, "ratios": [k2, k4], "targets": verdicts(rows)})
    assert "| 4 | mwer | 120 | 400 | 100 | 1.20 | 0.30 |" in table
    assert "target K=4 packed step <= 1.6 x sft: 1.200 PASS" in table
    assert "target DPO (stored reference) step within 5% of ORPO, K=2 packed: 1.182 FAIL" in table


def test_a_failed_row_leaves_its_targets_unmeasured():
    rows = {"sft": _row(100, 1.0), "packed_k4": {"status": "oom"}, "naive_k4": _row(400, 4.0)}
    assert {v["met"] for v in verdicts(rows)} == {None}


def test_the_child_gets_k_and_the_objective_only_for_k_best_rows():
    args = argparse.Namespace(
        model="tiny", batch_size=1, label_len=4, peft="lora", device="cpu", dtype="float32", steps=1, warmup=1,
        threads=1, logps_chunk_size=None, checkpoint_decoder=False, gradient_checkpointing=False,
    )  # fmt: skip
    assert "--candidates" not in common_argv(args)
    args.candidates, args.objective = 4, None
    assert common_argv(args)[-4:] == ["--candidates", "4", "--objective", "mwer"]


@pytest.mark.parametrize("k, objective", [(2, "dpo"), (3, "mwer")])
def test_the_bench_loss_is_the_same_packed_and_naive(tmp_path, k, objective):
    model = build_model(str(make_tiny_whisper_dir(tmp_path)))
    batch = candidate_batch(model.config, 2, k, 6, "cpu")
    losses = [candidate_loss(PreferenceWhisper(model, mode=mode), objective)(batch) for mode in ("packed", "naive")]
    assert torch.isfinite(losses[0])
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # six child processes, a few seconds each
def test_bench_candidates_writes_every_row_ratio_and_target(tmp_path, capsys):
    output = tmp_path / "kbest.json"
    argv = ["bench", "--model", str(make_tiny_whisper_dir(tmp_path)), "--candidates", "2,3", "--batch_size", "1"]
    argv += ["--label_len", "4", "--threads", "1", "--steps", "1", "--warmup", "1", "--device", "cpu"]
    assert cli_main([*argv, "--output", str(output)]) == 0
    report = json.loads(output.read_text())["kbest"]
    assert set(report["rows"]) == {"sft", "packed_k2", "naive_k2", "packed_k3", "naive_k3", "dpo_k2"}
    for name, row in report["rows"].items():
        assert row["status"] == "ok" and row["peak_mem_mb"] > 0 and row["step_s"] > 0, (name, row)
    assert report["rows"]["naive_k3"]["candidates"] == 3 and report["rows"]["naive_k3"]["objective"] == "mwer"
    assert [entry["candidates"] for entry in report["ratios"]] == [2, 3]
    assert all(entry["peak_packed_vs_naive"] > 0 for entry in report["ratios"])
    assert [v["target"] for v in report["targets"]] == [t.text for t in TARGETS]
    assert "target K=4 packed peak <= 1.5 x sft: - NOT MEASURED" in capsys.readouterr().out


def test_bench_refuses_k_below_two(capsys):
    assert cli_main(["bench", "--candidates", "1,4"]) == 2
    assert "every K must be >= 2" in capsys.readouterr().err
