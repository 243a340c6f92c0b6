"""Two-process training with torchrun on CPU (gloo), as `torchrun --nproc_per_node=2 finetune.py`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from train_fixtures import PAIRS, train_argv, write_manifest
from whisper_fixtures import make_tiny_whisper_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    model = make_tiny_whisper_dir(tmp_path)
    train = write_manifest(tmp_path, "train", PAIRS + PAIRS[:2])  # 8 rows: 2 steps of 2 x 2
    out = tmp_path / "ddp"
    command = [
        torchrun,
        "--nproc_per_node=2",
        "--master_port=29517",
        str(ROOT / "finetune.py"),
        *train_argv({"model": model, "train": train}, out, "--num_train_epochs", "1", "--use_adalora", "False"),
        *("--plot", "False", "--save_strategy", "no"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["global_step"] == 2  # 8 pairs / (2 per process x 2 processes)
    assert (out / "adapter_model.safetensors").is_file()
    assert result.stderr.count("saved to") == 1  # only rank 0 writes (the log is on stderr)
