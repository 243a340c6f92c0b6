"""Options of `--data` given as a Hugging Face dataset (evaluate, make-pairs; train has its own in DataArguments).

A separate dataclass, parsed beside each command's own, so both commands spell them alike; a
JSONL manifest ignores them. Nothing here imports `datasets` (`--help` stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMN_HELP = "dataset column holding"


@dataclass(frozen=True)
class DatasetOptions:
    data_split: str | None = field(
        default=None,
        metadata={
            "help": "split of a DatasetDict or hub dataset (None: the command's usual one, evaluate 'test', "
            "make-pairs 'train'; without it, the only split, said in a log line)"
        },
    )
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

    def source(self, location: str, default_split: str = "test", limit: int | None = None):
        """The `DataSource` of --data (a JSONL manifest ignores the dataset options)."""
        from rlhf_asr.data.sources import Columns, DataSource

        columns = Columns(
            self.audio_column, self.chosen_column, self.rejected_column, self.text_column, self.language_column
        )
        return DataSource(
            location, self.data_split, self.data_config, columns, self.streaming, default_split, limit, "--data_split"
        )
