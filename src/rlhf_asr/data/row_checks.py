"""`RowChecks`: what the readers check in each row, and what they do with a row that fails.

One frozen object, built where a command's options are known (training: `DataArguments.row_checks`;
evaluation, make-pairs, review: their readers) and handed whole to the readers (data/manifest.py,
data/sources.py, data/stream.py), which only read it. Its values are checked when it is made, in
the readers' words: a duration range outside Whisper's window, or a negative tolerance, is one line.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

from rlhf_asr.data.audio import WHISPER_MAX_SECONDS
from rlhf_asr.errors import UserInputError


@dataclass(frozen=True)
class RowChecks:
    """The row checks of one read. The defaults are training's: rows of 0.5-30 s, audio files opened."""

    min_duration: float = field(
        default=0.5, metadata={"help": "shorter audio is skipped and counted: a filter, not an error (seconds)"}
    )
    max_duration: float = field(
        default=WHISPER_MAX_SECONDS,
        metadata={"help": "longer audio is skipped and counted: a filter (seconds; at most 30 without long_audio)"},
    )
    timestamps: bool = field(
        default=False, metadata={"help": "segments are required and read (chosens/rejecteds, sentences)"}
    )
    skip_invalid: bool = field(
        default=False, metadata={"help": "skip and count invalid rows (--skip_invalid_rows); else any one stops"}
    )
    known_languages: Collection[str] | None = field(
        default=None, metadata={"help": "the language codes the tokenizer knows (None: not checked)"}
    )
    check_audio: bool = field(
        default=True,
        metadata={"help": "open each file's header for its real duration (existence is always checked)"},
    )
    duration_tolerance: tuple[float, float] = field(
        default=(0.5, 0.10),
        metadata={"help": "(seconds, fraction): a declared duration is wrong when off by more than both"},
    )
    long_audio: bool = field(
        default=False,
        metadata={"help": "audio over Whisper's 30 s window is a valid row (evaluation: decoded long-form)"},
    )
    kbest_rows: bool = field(
        default=False,
        metadata={"help": "K-best rows (reference, candidates) are read too, beside pairs (training, evaluation)"},
    )

    def __post_init__(self) -> None:
        known = None if self.known_languages is None else frozenset(self.known_languages)
        object.__setattr__(self, "known_languages", known)
        object.__setattr__(self, "duration_tolerance", tuple(self.duration_tolerance))
        low, high = self.min_duration, self.max_duration
        if not 0 <= low <= high <= (math.inf if self.long_audio else WHISPER_MAX_SECONDS):
            raise UserInputError(
                f"durations must satisfy 0 <= min_duration <= max_duration <= {WHISPER_MAX_SECONDS:g} "
                f"(Whisper's window), got min_duration={low:g}, max_duration={high:g}"
            )
        if len(self.duration_tolerance) != 2 or min(self.duration_tolerance) < 0:
            raise UserInputError(f"duration_tolerance must be (seconds, fraction) >= 0, got {self.duration_tolerance}")
