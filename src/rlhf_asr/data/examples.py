"""What a checked row becomes: plain, frozen types that every reader (a manifest, a dataset, a stream)
returns and the training set, pair mining and evaluation read. `where` names the row ("train.jsonl:12",
"dataset X, row 17") so that a later message can point at it."""

from __future__ import annotations

from dataclasses import dataclass
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
    where: str  # "train.jsonl:12" (a dataset's "dataset X, row 17"): names the row in later messages

    @property
    def no_speech(self) -> bool:
        """The right output is nothing: a clip of silence, noise or music."""
        return self.chosen == ""

    @property
    def reference(self) -> str:
        """What evaluation scores a hypothesis against: the preferred transcript."""
        return self.chosen


@dataclass(frozen=True)
class Hypothesis:
    """One candidate of a K-best row."""

    text: str
    word_errors: int  # word edits against the row's reference (the evaluation's normaliser)
    logprob: float | None  # the writing model's mean per-token log-prob; None: not scored


@dataclass(frozen=True)
class KBestExample:
    """A K-best row: one audio, its reference and the hypotheses scored against it."""

    audio_path: Path
    duration: float
    reference: str  # the preferred transcript; "" = nothing was said
    hypotheses: tuple[Hypothesis, ...]  # at least one, none the same
    language: str | None
    where: str

    @property
    def no_speech(self) -> bool:
        return self.reference == ""


@dataclass(frozen=True)
class AsrExample:
    audio_path: Path
    duration: float
    text: str
    language: str | None
    segments: tuple[Segment, ...] | None
    where: str

    @property
    def no_speech(self) -> bool:
        """Nothing was said in the clip."""
        return self.text == ""

    @property
    def reference(self) -> str:
        return self.text
