"""What a checked manifest row becomes: examples, the problems of bad rows, and the read's report.

Kept apart from the checks (data/manifest.py) so that the readers of other sources (datasets,
streams) and the training set share these types without the validation code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class PreferenceExample:
    audio_path: Path
    duration: float
    chosen: str
    rejected: str
    language: str | None  # Whisper language code ("en", "zh"), None when the row has none
    chosen_segments: tuple[Segment, ...] | None  # only with timestamps=True
    rejected_segments: tuple[Segment, ...] | None
    source: str  # "train.jsonl:12", for messages about this example later on

    @property
    def no_speech(self) -> bool:
        """The right output is nothing: a clip of silence, noise or music."""
        return self.chosen == ""


@dataclass(frozen=True)
class AsrExample:
    audio_path: Path
    duration: float
    text: str
    language: str | None
    segments: tuple[Segment, ...] | None
    source: str

    @property
    def no_speech(self) -> bool:
        """Nothing was said in the clip."""
        return self.text == ""


@dataclass(frozen=True)
class RowProblem:
    """One skipped row. `kind` is the short category counted in summaries."""

    manifest: Path
    line: int
    reason: str
    kind: str
    filtered: bool = False  # a duration-filter skip, not an error
    label: str | None = None  # a dataset's name: rows are then "dataset X, row 17" (data/sources.py)

    def __str__(self) -> str:
        where = f"{self.label}, row {self.line}" if self.label else f"{self.manifest}:{self.line}"
        return f"{where}: {self.reason}"


@dataclass
class ManifestReport:
    manifest: Path
    rows_read: int = 0
    examples: list = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        """'train.jsonl: 120 rows read (40 no-speech), 3 skipped (2 audio file missing, 1 duplicate row)'.

        The no-speech count (of the usable rows) is shown only when there are any.
        """
        no_speech = sum(example.no_speech for example in self.examples)
        text = f"{self.manifest.name}: {self.rows_read} rows read"
        text += f" ({no_speech} no-speech)" if no_speech else ""
        text += f", {len(self.skipped)} skipped"
        counts = Counter(problem.kind for problem in self.skipped)
        if counts:
            text += " (" + ", ".join(f"{n} {kind}" for kind, n in counts.most_common()) + ")"
        return text
