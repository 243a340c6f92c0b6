"""The studies' non-speech splits (`studies/nonspeech.py`) and their pairs."""

from __future__ import annotations

import json

import soundfile

from rlhf_asr.studies.corpus import Corpus, Utterance
from rlhf_asr.studies.nonspeech import (
    HELD_OUT_DURATIONS,
    HELD_OUT_KINDS,
    TRAIN_DURATIONS,
    TRAIN_KINDS,
    add_nonspeech,
)
from rlhf_asr.studies.stages import pair_rows


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
