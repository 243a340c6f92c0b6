"""The demo's non-speech clips (`demo/nonspeech.py`, `demo/guard.py`) and the demo run that reports them."""

from __future__ import annotations

import json
import logging

import pytest
import soundfile

from rlhf_asr.demo.corpus import Corpus, Utterance
from rlhf_asr.demo.nonspeech import (
    HELD_OUT_DURATIONS,
    HELD_OUT_KINDS,
    TRAIN_DURATIONS,
    TRAIN_KINDS,
    add_nonspeech,
    hallucination_rate,
    repetition_rate,
)
from rlhf_asr.demo.stages import pair_rows
from whisper_fixtures import make_tiny_model, make_tiny_whisper_dir


def test_held_out_clips_share_neither_kind_nor_duration_with_training(tmp_path):
    corpus = add_nonspeech(Corpus(tmp_path, {}), train=10, test=10, seed=0)
    train, test = corpus.splits["nonspeech_train"], corpus.splits["nonspeech_test"]
    assert {u.voice for u in train} == set(TRAIN_KINDS) and {u.voice for u in test} == set(HELD_OUT_KINDS)
    assert {round(u.duration) for u in train} <= set(TRAIN_DURATIONS)
    assert {round(u.duration) for u in test} <= set(HELD_OUT_DURATIONS)
    assert all(u.text == "" for u in train + test)
    assert soundfile.info(str(tmp_path / test[0].path)).samplerate == 16000
    rows = [json.loads(line) for line in corpus.manifest("nonspeech_test").read_text().splitlines()]
    assert [row["sentence"] for row in rows] == [""] * 10
    add_nonspeech(Corpus(tmp_path / "again", {}), train=10, test=10, seed=0)
    assert (tmp_path / "again" / test[3].path).read_bytes() == (tmp_path / test[3].path).read_bytes()


def test_hallucination_counts_words_not_punctuation_and_repetition_counts_loops():
    assert hallucination_rate(["", "you", " . ", "Thank you."]) == 0.5
    assert hallucination_rate([]) is None
    loop = "and and and and"
    assert repetition_rate(["a cat sat", "", ""], ["a cat sat", loop, "you"]) == pytest.approx(1 / 3)


def test_pairs_of_a_mixed_split_reject_any_output_on_silence_and_mistakes_on_speech():
    rows = [
        Utterance("the cat sat", "en-us", 160, "a.wav", 1.0, "train"),
        Utterance("", "tone", 0, "b.wav", 2.0, "train"),
        Utterance("", "silence", 0, "c.wav", 2.0, "train"),
        Utterance("hello world", "en-us", 160, "d.wav", 1.0, "train"),
    ]
    found = pair_rows(rows, ["the cat sat", "you", "", "hello word"])
    assert [(index, row["chosen"], row["rejected"]) for index, row in found] == [
        (1, "", "you"),
        (3, "hello world", "hello word"),
    ]


@pytest.mark.slow
def test_decode_time_guard_is_generate_with_whispers_thresholds(tmp_path):
    from rlhf_asr.demo.guard import DecodeGuard, guard_transcripts
    from rlhf_asr.demo.stages import decode_hidden, encode_clips

    model, processor = make_tiny_model()
    corpus = add_nonspeech(Corpus(tmp_path, {}), train=3, test=0, seed=0)
    paths = [tmp_path / u.path for u in corpus.splits["nonspeech_train"]]
    plain = decode_hidden(model, processor, encode_clips(model, processor, paths), [1.0] * 3, 8)
    # thresholds that never fire leave greedy decoding as it is; thresholds that always fire empty every window
    assert guard_transcripts(model, processor, paths, DecodeGuard(1.0, -1e9)) == plain
    assert any(plain) and guard_transcripts(model, processor, paths, DecodeGuard(-1.0, 1e9)) == ["", "", ""]


@pytest.mark.slow
def test_demo_reports_hallucination_before_and_after_next_to_wer(tmp_path, monkeypatch, caplog):
    import rlhf_asr.recipes.demo as recipe
    from rlhf_asr.demo.options import DemoOptions
    from test_results_hallucination import _fake_corpus

    model_dir = make_tiny_whisper_dir(tmp_path)
    monkeypatch.setattr(recipe, "synthesize_corpus", _fake_corpus)
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
        metrics = recipe.run_demo(options)
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
