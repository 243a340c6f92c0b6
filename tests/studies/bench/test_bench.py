"""`rlhf-asr bench`: the memory meter, the model shapes, and the command end to end (no timings asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.studies.bench.measure import CpuPeak, release_free_memory
from rlhf_asr.studies.bench.run import MODES
from rlhf_asr.studies.bench.shapes import build_model, whisper_config
from whisper_fixtures import make_tiny_whisper_dir

ALLOC_MB = 200


def _measured_growth(meter: CpuPeak, allocate: bool) -> float:
    release_free_memory()
    baseline = meter.current_mb()
    meter.reset()
    if allocate:
        array = np.ones(ALLOC_MB * 1024**2 // 8)  # ones, not empty: pages count only once touched
        array[::4096] += 1.0
        if meter.method == "sampling":
            import time

            time.sleep(0.05)  # let the sampling thread see it
        del array
    return meter.peak_mb() - baseline


@pytest.mark.parametrize("force_sampling", [False, True], ids=["vmhwm", "sampling"])
def test_cpu_peak_sees_a_deliberate_allocation(force_sampling):
    meter = CpuPeak(force_sampling=force_sampling)
    try:
        assert _measured_growth(meter, allocate=True) >= 0.9 * ALLOC_MB
    finally:
        meter.close()


def test_cpu_peak_is_near_zero_without_allocation():
    meter = CpuPeak()
    try:
        assert abs(_measured_growth(meter, allocate=False)) < 20
    finally:
        meter.close()


def test_shapes_are_the_model_card_sizes_only():
    """Tests bring their own tiny checkpoint (whisper_fixtures); no test shape ships in the product."""
    from rlhf_asr.studies.bench.shapes import SHAPES

    assert SHAPES == ("tiny", "base", "small", "medium", "large-v3")


@pytest.mark.parametrize("name, millions", [("tiny", 37.76), ("base", 72.59)])
def test_shape_parameter_counts(name, millions):
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=0.01)


def test_large_v3_shape():
    config = whisper_config("large-v3")
    assert (config.num_mel_bins, config.vocab_size, config.d_model, config.encoder_layers) == (128, 51866, 1280, 32)


def _bench(model, output, *options: str) -> list[str]:
    """`rlhf-asr bench` on `model` with `options`: one warm-up and one measured step on CPU, JSON into `output`."""
    return ["bench", "--model", str(model), *options, "--steps", "1", "--warmup", "1", "--device", "cpu",
            "--output", str(output)]  # fmt: skip


@pytest.mark.slow  # five child processes, a few seconds each
def test_bench_command_runs_every_mode(tmp_path, capsys):
    output = tmp_path / "bench.json"
    argv = _bench(make_tiny_whisper_dir(tmp_path), output, "--batch_size", "2", "--label_len", "8", "--threads", "1")
    assert cli_main(argv) == 0
    report = json.loads(output.read_text())
    assert set(report["modes"]) == set(MODES)
    for mode, result in report["modes"].items():
        assert result["status"] == "ok", (mode, result)
        assert result["peak_mem_mb"] > 0 and result["step_s"] > 0
        assert np.isfinite(result["loss"])
    assert report["config"]["torch_version"] and report["config"]["cores"] >= 1
    assert report["modes"]["naive"]["peak_vs_naive"] == 1.0
    table = capsys.readouterr().out
    assert all(f"| {mode} |" in table for mode in MODES)


def test_bench_reports_a_failing_mode_instead_of_crashing(tmp_path):
    """A mode whose child fails (here: a checkpoint folder that does not exist) is a row, not a crash."""
    output = tmp_path / "bench.json"
    assert cli_main(_bench(tmp_path / "missing", output, "--modes", "packed")) == 0
    result = json.loads(output.read_text())["modes"]["packed"]
    assert result["status"] == "failed" and "missing" in result["error"]


def test_bench_runs_bf16_autocast_on_cpu_and_refuses_cpu_fp16(tmp_path, rlhf_log):
    output = tmp_path / "bench.json"
    model = make_tiny_whisper_dir(tmp_path)
    # `ours`: the packed mode's older name, still taken (the JSON files of earlier runs use it)
    common = _bench(model, output, "--modes", "sft,ours", "--batch_size", "2", "--label_len", "8", "--threads", "1")
    assert cli_main([*common, "--dtype", "bfloat16"]) == 0
    report = json.loads(output.read_text())
    assert list(report["modes"]) == ["sft", "packed"]
    assert report["config"]["dtype"] == "bfloat16"
    for result in report["modes"].values():
        assert result["status"] == "ok" and result["dtype"] == "bfloat16" and np.isfinite(result["loss"])
    assert cli_main([*common, "--dtype", "float16"]) == 0
    assert "--dtype float16 is CUDA-only: CPU runs in float32" in rlhf_log.text
    assert json.loads(output.read_text())["config"]["dtype"] == "float32"
