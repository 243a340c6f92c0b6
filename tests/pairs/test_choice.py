"""Miner (pairs/choice.py): which candidate is rejected, and rows that train even when the rejected
ran to Whisper's length limit (cut to fit and counted) or the reference cannot train (skipped)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rlhf_asr.data.examples import AsrExample
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.pairs.choice import Miner
from whisper_fixtures import write_tone


def _example(text: str) -> AsrExample:
    return AsrExample(Path("/data/a.wav"), 1.0, text, "en", None, "x.jsonl:1")


@pytest.mark.parametrize(("negative", "expected"), [("hardest", "the bat sat"), ("worst", "a b c d e")])
def test_negative_choice(negative, expected):
    miner = Miner(object(), random.Random(0), negative, False, "m", Path("/out"), {"words": [], "chars": []})
    candidates = [
        Candidate("The cat sat.", -0.5),  # correct after normalisation: never a negative
        Candidate("the bat sat", -1.0),
        Candidate("", -0.1),  # empty output: not usable
        Candidate("a b c d e", -3.0),
    ]
    row, status = miner.pair(_example("the cat sat"), "en", candidates)
    assert status == "mined" and row["rejected"] == expected


def test_only_correct_or_empty_candidates():
    miner = Miner(object(), random.Random(0), "hardest", False, "m", Path("/out"), {"words": [], "chars": []})
    assert miner.pair(_example("hi there"), "en", [Candidate("Hi, there!", -1.0)]) == (None, "skipped_correct")
    assert miner.pair(_example("hi there"), "en", [Candidate("", -1.0)]) == (None, "skipped_empty")


def _trains(path: Path, processor) -> list:
    """The rows of a mined manifest as the training dataset takes them (UserInputError if any cannot)."""
    from rlhf_asr.data.dataset import PreferenceDataset
    from rlhf_asr.data.tokens import TranscriptEncoder

    examples = read_preference_manifest(path).examples
    return PreferenceDataset(examples, None, TranscriptEncoder(processor.tokenizer), default_language="en").pairs


@pytest.mark.parametrize("name", ["tiny.en", "base"])
@pytest.mark.parametrize("generation", [{"max_length": 448}, {"max_new_tokens": 448}])
def test_a_loop_decoded_to_the_limit_is_written_so_that_it_trains(name, generation, tmp_path):
    """A repetition loop runs to decoding's length limit without <|endoftext|>. make-pairs wrote it
    as is, and its own `train` refused the row: "transcript is 449 tokens, Whisper's limit is 448"."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, TranscriptEncoder
    from rlhf_asr.inference.decode import _length_limit
    from whisper_fixtures import tiny_processor

    processor = tiny_processor(name)
    encoder = TranscriptEncoder(processor.tokenizer)
    prompt_len = len(encoder.prefix("en"))
    core = SimpleNamespace(
        generation_config=GenerationConfig(**generation), config=SimpleNamespace(max_target_positions=MAX_TARGET_TOKENS)
    )
    limit = _length_limit(core, prompt_len)
    generated = limit["max_new_tokens"] if "max_new_tokens" in limit else limit["max_length"] - prompt_len
    loop = " ".join(["the"] * generated)  # what the decoder returns when cut off: `generated` text tokens
    assert len(encoder.text_ids(loop)) == generated
    miner = Miner(
        processor, random.Random(0), "hardest", False, "m", tmp_path, {"words": [], "chars": []}, encoder=encoder
    )
    write_tone(tmp_path / "a.wav", 1.0)
    example = AsrExample(tmp_path / "a.wav", 1.0, "the cat sat", "en", None, "asr.jsonl:1")
    row, status = miner.pair(example, "en", [Candidate(loop, -0.1)])
    assert status == "mined" and row["rejected"] == loop and "rejected_truncated" not in row  # written whole
    (tmp_path / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    ((_, rejected),) = _trains(tmp_path / "pairs.jsonl", processor)
    assert len(rejected.ids) == MAX_TARGET_TOKENS  # prompt + text + <|endoftext|>, exactly the limit


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_a_loop_over_the_limit_is_cut_to_fit_and_counted(name, tmp_path, rlhf_log):
    from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, TranscriptEncoder, max_text_tokens
    from whisper_fixtures import tiny_processor

    processor = tiny_processor(name)
    encoder = TranscriptEncoder(processor.tokenizer)
    language = "en" if encoder.multilingual else None
    limit = max_text_tokens(len(encoder.prefix(language)))
    loop = " ".join(["the"] * (limit + 3))  # three tokens over: re-tokenised output of an old decoding limit
    assert len(encoder.encode(loop, language).ids) == MAX_TARGET_TOKENS + 3
    miner = Miner(
        processor, random.Random(0), "hardest", False, "m", tmp_path, {"words": [], "chars": []}, encoder=encoder
    )
    write_tone(tmp_path / "a.wav", 1.0)
    example = AsrExample(tmp_path / "a.wav", 1.0, "the cat sat", "en", None, "asr.jsonl:1")
    row, status = miner.pair(example, "en", [Candidate(loop, -0.1)])
    assert status == "mined" and row["rejected_truncated"] and loop.startswith(row["rejected"])
    assert len(encoder.encode(row["rejected"], language).ids) == MAX_TARGET_TOKENS
    (tmp_path / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    assert len(_trains(tmp_path / "pairs.jsonl", processor)) == 1
    # a reference that cannot train skips the utterance instead of writing a row train refuses
    long_reference = AsrExample(tmp_path / "a.wav", 1.0, loop, "en", None, "asr.jsonl:2")
    assert miner.pair(long_reference, "en", [Candidate("the cat", -0.1)]) == (None, "skipped_reference")
    # both are warnings naming the manifest row (logged, so --quiet keeps them and the progress bar stays whole)
    assert [
        (r.levelname, r.getMessage().split(":")[0] + ":" + r.getMessage().split(":")[1]) for r in rlhf_log.records
    ] == [("WARNING", "asr.jsonl:1"), ("WARNING", "asr.jsonl:2")]
