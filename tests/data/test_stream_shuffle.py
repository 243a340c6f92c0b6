"""The streamed training set's order (issue 22): a bounded, seeded shuffle buffer, a new order per
pass, and a resume that continues the order where the checkpoint left it (data/stream.py, data/dataset.py).

Rows are laid out as make-pairs writes them: every speech pair, then the no-speech pairs, then the
padded ones. Audio is never read here: `make_item` is replaced by the row's name.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import rlhf_asr.data.dataset as dataset_module
from rlhf_asr.data.dataset import StreamingPreferenceDataset
from rlhf_asr.data.examples import PreferenceExample
from rlhf_asr.data.stream import shuffled
from rlhf_asr.data.tokens import TranscriptEncoder
from whisper_fixtures import tiny_processor

KINDS = {"speech": 30, "nospeech": 10, "padded": 10}


def _rows(kinds=KINDS) -> list[PreferenceExample]:
    rows = []
    for kind, count in kinds.items():
        for i in range(count):
            chosen = "" if kind == "nospeech" else f"{kind} words {i}"
            rows.append(
                PreferenceExample(Path("a.wav"), 1.0, chosen, f"wrong {kind} {i}", "en", None, None, f"{kind}:{i}")
            )
    return rows


@pytest.fixture(scope="module")
def encoder():
    return TranscriptEncoder(tiny_processor("tiny.en").tokenizer)


@pytest.fixture(autouse=True)
def no_audio(monkeypatch):
    monkeypatch.setattr(dataset_module, "make_item", lambda example, pair, extractor, augmenter: example.where)


def _stream(encoder, rows=None, buffer=1000, seed=7, **options) -> StreamingPreferenceDataset:
    rows = _rows() if rows is None else rows
    return StreamingPreferenceDataset(rows, None, encoder, shuffle_buffer=buffer, seed=seed, **options)


def _pass(stream, epoch=None) -> list[str]:
    if epoch is not None:
        stream.set_epoch(epoch)
    return list(stream)


FILE_ORDER = [row.where for row in _rows()]


def test_a_pass_is_not_in_file_order_and_mixes_kinds_from_the_first_batch(encoder):
    order = _pass(_stream(encoder), 0)
    assert sorted(order) == sorted(FILE_ORDER) and order != FILE_ORDER
    first = Counter(name.split(":")[0] for name in order[:8])  # one batch of 8
    assert len(first) == 3, first  # speech, no-speech and padded: not a single-kind batch


def test_buffer_smaller_than_the_set_still_mixes_kinds_within_its_reach(encoder):
    """A 20-row buffer over 30 speech rows: the later kinds come in as soon as the buffer reaches them."""
    order = _pass(_stream(encoder, buffer=20), 0)
    assert sorted(order) == sorted(FILE_ORDER) and order != FILE_ORDER
    kinds_in_first_half = {name.split(":")[0] for name in order[:25]}
    assert kinds_in_first_half == {"speech", "nospeech", "padded"}


def test_same_seed_same_order_other_seed_or_pass_another(encoder):
    first = _pass(_stream(encoder), 0)
    assert _pass(_stream(encoder), 0) == first  # a fresh process (a resumed run) sees the same order
    assert _pass(_stream(encoder, seed=8), 0) != first
    stream = _stream(encoder)
    passes = [_pass(stream, epoch) for epoch in range(3)]
    assert passes[0] == first and passes[1] != first and passes[2] not in (first, passes[1])
    # without set_epoch (outside the Trainer) each pass still gets the next order
    plain = _stream(encoder)
    assert [list(plain) for _ in range(3)] == passes


@pytest.mark.parametrize("buffer", [0, 1])
def test_buffer_of_0_or_1_keeps_file_order(encoder, buffer):
    assert _pass(_stream(encoder, buffer=buffer), 0) == FILE_ORDER


@pytest.mark.parametrize("buffer", [1, 2, 5, 64])
def test_shuffle_holds_at_most_the_buffer(buffer):
    """The memory bound: never more than `buffer` items read and not yet given out."""
    read, out = [0], []

    def source():
        for i in range(200):
            read[0] += 1
            yield i

    for item in shuffled(source(), buffer, np.random.default_rng(0)):
        assert read[0] - len(out) <= max(buffer, 1)
        out.append(item)
    assert sorted(out) == list(range(200))
    assert (out == list(range(200))) == (buffer <= 1)


def _trainer_steps(orders: list[list[str]], batch: int, accumulation: int, drop_last: bool) -> list[list[str]]:
    """What the Trainer consumes of each pass: batches of `batch` (the last one short unless dropped),
    grouped `accumulation` to an optimizer step (a pass's last group short)."""
    steps = []
    for order in orders:
        usable = len(order) // batch * batch if drop_last else len(order)
        batches = [order[i : i + batch] for i in range(0, usable, batch)]
        for i in range(0, len(batches), accumulation):
            steps.append([name for chunk in batches[i : i + accumulation] for name in chunk])
    return steps


@pytest.mark.parametrize(
    "batch, accumulation, drop_last, done",
    [(4, 1, False, 3), (4, 1, False, 13), (4, 1, False, 26), (3, 2, False, 20), (7, 1, True, 9), (5, 2, False, 5)],
)
def test_resume_continues_the_order_where_the_checkpoint_left_it(encoder, batch, accumulation, drop_last, done):
    """50 rows: resumed after `done` steps, inside the first pass or a later one, the steps that
    follow are the ones the uninterrupted run took."""
    stream = _stream(encoder)
    full = _trainer_steps([_pass(stream, epoch) for epoch in range(4)], batch, accumulation, drop_last)
    resumed = _stream(encoder)
    resumed.resume_after(done, batch, accumulation, drop_last)
    # the Trainer after a resume: epoch 0 is the rest of the pass it stopped in, then set_epoch(1), ...
    rest = _trainer_steps([_pass(resumed, epoch) for epoch in range(4)], batch, accumulation, drop_last)
    assert full[done:] and rest[: len(full) - done] == full[done:]


def test_skipped_rows_are_counted_and_said_at_the_end_of_the_first_pass(encoder, caplog):
    rows = _rows({"speech": 4})
    rows.insert(2, PreferenceExample(Path("a.wav"), 1.0, "x <|endoftext|> y", "no", "en", None, None, "row:2"))
    rows.insert(4, PreferenceExample(Path("a.wav"), 1.0, "y <|0.00|> z", "no", "en", None, None, "row:4"))
    stream = _stream(encoder, rows=rows, skip_invalid=True)
    with caplog.at_level(logging.INFO, logger="rlhf_asr"):
        assert len(_pass(stream, 0)) == 4
        assert len(_pass(stream, 1)) == 4
    said = [record for record in caplog.records if "skipped" in record.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]  # once: the first pass, not every pass
    assert said[0].levelno == logging.WARNING
    assert "6 rows read in the first pass, 2 skipped (2 not encodable)" in said[0].getMessage()
    assert len(stream.skipped) == 2
