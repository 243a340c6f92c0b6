"""`rlhf-asr bench --mining`: HF vs CTranslate2 mining speed on the same clips, with the outputs compared."""

from __future__ import annotations

import json

import pytest

from rlhf_asr.commands.cli import main as cli_main
from whisper_fixtures import make_tiny_whisper_dir, write_tone

pytest.importorskip("ctranslate2")


def test_mining_bench_times_both_backends_on_the_same_candidates(tmp_path, capsys):
    model_dir = make_tiny_whisper_dir(tmp_path, seed=1, max_length=12)
    rows = []
    for i in range(3):
        write_tone(tmp_path / f"a{i}.wav", 1.0, 300 + 100 * i, seed=i)
        rows.append({"audio": {"path": f"a{i}.wav"}, "duration": 1.0, "sentence": "hello world"})
    (tmp_path / "asr.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = ["bench", "--mining", "--model", str(model_dir), "--mining_data", str(tmp_path / "asr.jsonl")]
    command += ["--mining_clips", "3", "--num_candidates", "2", "--batch_size", "2", "--threads", "1"]
    assert cli_main([*command, "--mining_quantizations", "float32", "--output", str(tmp_path / "m.json")]) == 0
    assert "| ct2_float32 |" in capsys.readouterr().out
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["config"]["clips"] == 3 and report["config"]["num_candidates"] == 2
    hf, ct2 = report["results"]["hf"], report["results"]["ct2_float32"]
    assert ct2["top1_agreement"] == ct2["nbest_list_agreement"] == 1.0  # float32: the same model
    assert ct2["speedup_vs_hf"] == pytest.approx(hf["seconds"] / ct2["seconds"])
    assert ct2["clips_per_second"] == pytest.approx(3 / ct2["seconds"])


def test_mining_bench_refuses_random_shapes_and_unknown_types(capsys):
    assert cli_main(["bench", "--mining"]) == 2
    assert "real weights" in capsys.readouterr().err
    assert cli_main(["bench", "--mining", "--model", "x", "--mining_quantizations", "int4"]) == 2
    assert "int4" in capsys.readouterr().err
