"""A dataset read row by row while training (`--streaming` with `--max_steps`): nothing read up front.

For a set larger than memory (or a hub stream) reading every row before the first step would
cost as much as an epoch. Here each row is checked when it is reached, with the manifest
reader's own row checks (data/manifest.py), and named by index as there; a bad row stops the
run at that row, or with --skip_invalid_rows is skipped and counted. What a stream cannot
check: duplicates (that needs every row at hand) and the row count (steps come from --max_steps).

A stream is read in file order, and make-pairs writes its pairs by kind (speech, then no-speech,
then padded): trained in that order, batches would hold one kind each and a run shorter than a
pass would never see the later kinds. `shuffled` mixes them with a bounded buffer, as `datasets`'
`IterableDataset.shuffle` does; rows are then checked when they enter the buffer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rlhf_asr.data.json_rows import BadRow
from rlhf_asr.data.manifest import RowProblem, _Context, _short, row_parser
from rlhf_asr.data.options import DataSource
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.data.sources import open_rows
from rlhf_asr.errors import UserInputError

SKIP_HINT = "(--skip_invalid_rows True skips such rows and counts them)"
T = TypeVar("T")


def shuffled(items: Iterable[T], buffer_size: int, rng: np.random.Generator) -> Iterator[T]:
    """`items` in a random order, holding at most `buffer_size` of them at a time.

    The buffer is filled with the first `buffer_size` items; then a random one is given out and
    its place taken by the next item, until the items run out and the buffer is emptied at
    random. An item is so given out at most `buffer_size - 1` places earlier than in `items`, but
    any number later. `buffer_size` 0 or 1: `items` in their own order. Deterministic for a given
    `rng` state: a pass's order is a function of its seed.
    """
    iterator = iter(items)
    if buffer_size <= 1:
        yield from iterator
        return
    buffer = []
    for item in iterator:
        buffer.append(item)
        if len(buffer) == buffer_size:
            break
    while buffer:
        slot = int(rng.integers(len(buffer)))
        yield buffer[slot]
        try:
            buffer[slot] = next(iterator)
        except StopIteration:
            buffer[slot] = buffer[-1]
            buffer.pop()


def pass_rng(seed: int, pass_index: int) -> np.random.Generator:
    """The shuffle's generator for one pass: the run's seed and the pass, so each pass has its own order
    and a resumed run (another process) draws the same one."""
    return np.random.default_rng([seed % 2**32, pass_index])


def read_summary(label: str, rows_read: int, skipped: Counter, finished: bool) -> str:
    """'dataset prefs: 120 rows read in the first pass, 3 skipped (2 empty transcript, 1 not encodable)'.

    `skipped` counts the skipped rows by kind; `finished`: False when the run ended inside the first pass.
    """
    when = "in the first pass" if finished else "before the first pass ended (the run stopped first)"
    text = f"{label}: {rows_read} rows read {when}, {sum(skipped.values())} skipped"
    if skipped:
        text += " (" + ", ".join(f"{n} {kind}" for kind, n in skipped.most_common()) + ")"
    return text


def check_row(value: Any, index: int, ctx: _Context, kind: str = "preference"):
    """One row checked as the manifest readers check each row: its example, or the RowProblem skipping it."""
    try:
        if isinstance(value, BadRow):
            raise value
        if not isinstance(value, dict):
            raise BadRow("not an object", f"row should be an object, got {type(value).__name__} {_short(value)}")
        return row_parser(kind, ctx.checks)(value, index, ctx)
    except BadRow as bad:
        return RowProblem(ctx.manifest, index, bad.reason, bad.kind, bad.filtered, ctx.label)


class ExampleStream:
    """Checked examples of a dataset, read anew on each pass (each epoch of a --max_steps run).

    `skipped` and `rows_read` count the first pass only.
    """

    def __init__(self, source: DataSource, kind: str = "preference", checks: RowChecks | None = None):
        self.label, self.kind, self._rows = open_rows(source, kind)  # columns and split checked here, up front
        checks = replace(checks or RowChecks(), check_audio=False)  # sources read each file's real duration already
        self.checks = checks
        self._ctx = _Context(Path(self.label), checks, self.label)
        self.rows_read, self.skipped, self._passes = 0, [], 0

    def __iter__(self) -> Iterator:
        first = self._passes == 0
        self._passes += 1
        for index, value in self._rows():
            result = check_row(value, index, self._ctx, self.kind)
            self.rows_read += first
            if isinstance(result, RowProblem):
                if not result.filtered and not self.checks.skip_invalid:
                    raise UserInputError(f"{result} {SKIP_HINT}")
                if first:
                    self.skipped.append(result)
                continue
            yield result
