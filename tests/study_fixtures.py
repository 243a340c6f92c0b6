"""Shared by the studies' tests (tests/studies/) and the speech synthesis's: a tiny corpus without
espeak-ng, and the mark of tests that need it."""

from __future__ import annotations

import pytest

from rlhf_asr.data.synth_audio import espeak_available
from whisper_fixtures import write_tone

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"
)


def fake_corpus(options, folder, seed):
    """A stand-in for `studies.options.synthesize_corpus`: tones for speech, with the texts of a tiny corpus."""
    from rlhf_asr.studies.corpus import Corpus, Utterance

    texts = {
        "train": ["the cat sat on the mat", "hello there world", "open the window please", "a b c d"],
        "test": ["good morning to you", "the sun is out"],
        "test_voices": ["good morning to you", "the sun is out"],
    }
    splits = {}
    for split, rows in texts.items():
        splits[split] = []
        for i, text in enumerate(rows):
            path = f"{split}/{i}.wav"
            write_tone(folder / path, 1.0, 200 + 40 * i + 7 * len(split), seed=i)
            splits[split].append(Utterance(text, "en-us", 160, path, 1.0, split))
    return Corpus(folder, splits)


def tiny_results_options(tmp_path, study: str, raw_name: str, report_name: str, **changes):
    """`ResultsOptions` of a results study on a tiny random model (its folder made under tmp_path) and
    the fake corpus's sizes, writing into tmp_path / "study"; `changes` replace any field."""
    from rlhf_asr.studies.options import ResultsOptions
    from whisper_fixtures import make_tiny_whisper_dir

    out = tmp_path / "study"
    return ResultsOptions(
        **{
            "output_dir": str(out),
            "model": str(make_tiny_whisper_dir(tmp_path)),
            "report_path": str(out / report_name),
            "raw_path": str(out / raw_name),
            "num_train": 4,
            "num_test": 2,
            "epochs": 1,
            "batch_size": 4,
            "lora_r": 2,
            "seeds": [0],
            "study": study,
            **changes,
        }
    )
