"""`train --streaming --max_steps N` end to end (issue 22): the stream is shuffled, a resumed run
continues exactly, and skipped rows are said on stderr, not only counted in the JSON files."""

from __future__ import annotations

import logging
from collections import Counter

import datasets
import pytest
import torch
from datasets import Audio, Dataset
from safetensors.torch import load_file

from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.model.loading import load_processor
from rlhf_asr.trainer.run import build_stream
from train_fixtures import PAIRS, train, train_argv
from whisper_fixtures import write_tone


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def _parquet(folder, pairs, name="prefs"):
    audio = []
    for i in range(len(pairs)):
        wav = write_tone(folder / "wav" / f"{i}.wav", 1.0 + 0.05 * (i % 8), 200 + 40 * (i % 12), seed=i)
        audio.append({"bytes": wav.read_bytes(), "path": f"{i}.wav"})
    data = {
        "audio": audio,
        "chosen": [c for c, _ in pairs],
        "rejected": [r for _, r in pairs],
        "language": ["en"] * len(pairs),
    }
    path = folder / f"{name}.parquet"
    Dataset.from_dict(data).cast_column("audio", Audio()).to_parquet(str(path))
    return path


# as make-pairs writes them: the speech pairs, then the no-speech ones, then the padded ones
MADE_PAIRS = (
    [(f"speech number {i}", f"speech numbers {i}") for i in range(9)]
    + [("", f"thank you {i}") for i in range(6)]
    + [(f"padded clip {i}", f"padded clips {i}") for i in range(6)]
)


def test_streamed_training_set_is_shuffled_with_kinds_mixed(workspace, tmp_path):
    path = _parquet(tmp_path, MADE_PAIRS)
    argv = train_argv(workspace, tmp_path / "out", "--train_data", str(path), "--streaming", "--max_steps", "5")
    _, data_args, config = parse_training_args(argv)
    processor = load_processor(str(workspace["model"]))
    encoder = TranscriptEncoder(processor.tokenizer)
    dataset, _ = build_stream(data_args, config, processor, encoder, None, None)
    by_ids = {(encoder.encode(c, None).ids, encoder.encode(r, None).ids): i for i, (c, r) in enumerate(MADE_PAIRS)}
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    order = [by_ids[item["chosen"].ids, item["rejected"].ids] for item in dataset]
    assert sorted(order) == list(range(len(MADE_PAIRS)))
    assert order != list(range(len(MADE_PAIRS)))
    kind = lambda i: "speech" if i < 9 else "nospeech" if i < 15 else "padded"  # noqa: E731
    assert len(Counter(kind(i) for i in order[:8])) == 3  # the first batches are not all speech


def test_streamed_run_resumed_past_the_first_pass_ends_where_the_full_run_does(workspace, tmp_path):
    """6 rows, 2 a step: 3 steps a pass. Resumed at step 5 (inside the second pass), 3 steps to go."""
    path = _parquet(tmp_path, PAIRS)
    common = ["--train_data", str(path), "--streaming", "--max_steps", "8", "--plot", "False"]
    common += ["--save_strategy", "steps", "--save_steps", "5"]
    full = tmp_path / "full"
    train(workspace, full, *common)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint-5").symlink_to(full / "checkpoint-5", target_is_directory=True)
    summary = train(workspace, resumed, *common, "--resume_from_checkpoint", str(resumed / "checkpoint-5"))
    assert summary["global_step"] == 8
    a, b = load_file(full / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)


def _said(rlhf_log, text):
    return [r for r in rlhf_log.records if text in r.getMessage() and r.levelno >= logging.INFO]


def test_streamed_skipped_rows_are_said_with_their_reasons(workspace, tmp_path, rlhf_log):
    pairs = [*PAIRS[:4], ("empty rejected", ""), ("x <|endoftext|> y", "x y"), *PAIRS[4:]]
    path = _parquet(tmp_path, pairs, "bad")
    data = ["--train_data", str(path), "--streaming", "--skip_invalid_rows", "--plot", "False"]
    summary = train(workspace, tmp_path / "skip", *data, "--max_steps", "4")
    assert summary["train_rows_skipped"] == 2
    said = _said(rlhf_log, " skipped (")
    assert said, [r.getMessage() for r in rlhf_log.records]
    line = said[0].getMessage()
    assert said[0].levelno == logging.WARNING
    assert "dataset bad.parquet" in line and "8 rows read" in line and "2 skipped" in line, line
    assert "1 empty transcript" in line and "1 not encodable" in line, line


def test_streamed_run_ending_inside_the_first_pass_says_the_rows_skipped_so_far(workspace, tmp_path, rlhf_log):
    pairs = [("empty rejected", ""), *PAIRS]
    path = _parquet(tmp_path, pairs, "early")
    data = ["--train_data", str(path), "--streaming", "--skip_invalid_rows", "--plot", "False"]
    data += ["--per_device_train_batch_size", "1", "--stream_shuffle_buffer", "0"]
    summary = train(workspace, tmp_path / "early", *data, "--max_steps", "2")
    assert summary["train_rows_skipped"] == 1
    said = _said(rlhf_log, " skipped (")
    assert len(said) == 1, [r.getMessage() for r in said]
    line = said[0].getMessage()
    assert "before the first pass ended" in line and "1 skipped (1 empty transcript)" in line, line


def test_a_negative_shuffle_buffer_is_one_clear_error(workspace, tmp_path):
    from rlhf_asr.errors import UserInputError

    with pytest.raises(UserInputError, match=r"--stream_shuffle_buffer -1: use 0 \(no shuffle\) or more"):
        parse_training_args(train_argv(workspace, tmp_path / "out", "--stream_shuffle_buffer", "-1"))
