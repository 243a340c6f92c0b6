"""What names a source of rows: `DataSource`, its `Columns`, and `DatasetOptions`, the options that build one.

`DatasetOptions` are the dataset options every command shares (train, evaluate, make-pairs): the
hub config, which column holds each manifest field, and streaming; each command names its split
itself (train `--train_split`/`--test_split`, evaluate and make-pairs `--data_split`) and passes
it to `DatasetOptions.source`, the one place a `DataSource` is built. A JSONL manifest ignores
them all. Nothing here imports `datasets`, numpy or the readers: `--help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

COLUMN_HELP = "dataset column holding"


@dataclass(frozen=True)
class Columns:
    """Which dataset column holds each manifest field."""

    audio: str = "audio"
    chosen: str = "chosen"
    rejected: str = "rejected"
    text: str | None = None  # ASR reference; None: "sentence", else "text"
    language: str = "language"  # optional: rows without it take --language


@dataclass(frozen=True)
class DataSource:
    """A --train_data/--test_data/--data value with its dataset options (ignored for a JSONL manifest).

    Which split of a DatasetDict or hub dataset is read, one rule for every command (`_pick_split`):
    the split named (`split`) if given, and only that one; else the command's usual split
    (`default_split`); if the dataset lacks it and has exactly one split, that one, said in a log
    line; otherwise an error listing the splits and naming `split_option`.
    """

    location: str
    split: str | None = None  # the split the user named; None: `default_split`, or else the only one
    config: str | None = None  # a hub dataset's config (e.g. a language)
    columns: Columns = field(default_factory=Columns)  # which column holds each manifest field
    streaming: bool = False  # rows read one at a time, no Arrow copy first
    default_split: str = "train"  # the command's usual split: "train" for training data, "test" for held-out
    limit: int | None = None  # read only the first N rows (a large stream's sample)
    split_option: str | None = None  # the option naming the split in messages ("--data_split"); None: the API


@dataclass(frozen=True)
class DatasetOptions:
    """The dataset options of train, evaluate and make-pairs, parsed beside each command's own."""

    data_config: str | None = field(default=None, metadata={"help": "hub dataset config (e.g. a language)"})
    audio_column: str = field(default="audio", metadata={"help": f"{COLUMN_HELP} the audio (bytes or a path)"})
    chosen_column: str = field(default="chosen", metadata={"help": f"{COLUMN_HELP} the preferred transcript"})
    rejected_column: str = field(default="rejected", metadata={"help": f"{COLUMN_HELP} the rejected transcript"})
    text_column: str | None = field(
        default=None, metadata={"help": f"{COLUMN_HELP} the reference transcript (None: sentence, else text)"}
    )
    language_column: str = field(default="language", metadata={"help": f"{COLUMN_HELP} each row's language"})
    streaming: bool = field(
        default=False, metadata={"help": "read the dataset row by row (no Arrow copy first): sets larger than memory"}
    )

    def source(
        self,
        location: str | Path,
        split: str | None = None,
        default_split: str = "train",
        split_option: str | None = None,
        limit: int | None = None,
    ) -> DataSource:
        """The `DataSource` of `location` with these options: `split` as the user named it (None: the
        usual `default_split`, else the only one), `split_option` the option that names it in messages."""
        columns = Columns(
            self.audio_column, self.chosen_column, self.rejected_column, self.text_column, self.language_column
        )
        return DataSource(
            str(location), split, self.data_config, columns, self.streaming, default_split, limit, split_option
        )


def as_source(data: str | Path | DataSource, default_split: str = "train", limit: int | None = None) -> DataSource:
    """`data` as a DataSource: a path or hub id gets the default dataset options (a manifest ignores them)."""
    if isinstance(data, DataSource):
        return data
    return DatasetOptions().source(data, default_split=default_split, limit=limit)
