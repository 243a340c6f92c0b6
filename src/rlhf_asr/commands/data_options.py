"""`--data_split` and the shared dataset options (data/options.py), as evaluate and make-pairs parse them.

Parsed beside each command's own options, so both commands spell them alike; a JSONL manifest
ignores them. Nothing here imports `datasets` (`--help` stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlhf_asr.data.options import DatasetOptions, DataSource


@dataclass(frozen=True)
class _DataSplit:
    """The split option: first in --help, before the shared dataset options."""

    data_split: str | None = field(
        default=None,
        metadata={
            "help": "split of a DatasetDict or hub dataset (None: the command's usual one, evaluate 'test', "
            "make-pairs 'train'; without it, the only split, said in a log line)"
        },
    )


@dataclass(frozen=True)
class DataOptions(DatasetOptions, _DataSplit):
    """--data_split, then the dataset options train shares."""

    def data_source(self, location: str, default_split: str, limit: int | None = None) -> DataSource:
        """The `DataSource` of --data: --data_split if given, else the command's `default_split`."""
        return self.source(location, self.data_split, default_split, "--data_split", limit)
