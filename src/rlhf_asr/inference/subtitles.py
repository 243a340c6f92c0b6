"""Timed segments as the files subtitle players and tools read: SRT, WebVTT, JSON or plain text.

SRT (SubRip) and WebVTT differ in small ways players are strict about: SRT numbers its cues from
1 and writes `00:00:01,000` (comma), VTT starts with a `WEBVTT` line and writes `00:00:01.000`
(dot). Times are rounded to milliseconds once, here, and a cue never ends before it starts
(Whisper can give a zero-length last segment). One class per format, chosen by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from rlhf_asr.inference.longform import TimedSegment


def timestamp(seconds: float, separator: str) -> str:
    """`HH:MM:SS<separator>mmm` for a non-negative number of seconds."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cues(segments: Sequence[TimedSegment]) -> list[tuple[float, float, str]]:
    """(start, end, text) with end >= start, texts stripped, empty ones dropped."""
    return [(s.start, max(s.end, s.start), s.text.strip()) for s in segments if s.text.strip()]


class SubtitleFormat:
    """Writes one file's segments; `suffix` is the file extension used with --output_dir."""

    suffix = ".txt"

    def render(self, segments: Sequence[TimedSegment], text: str) -> str:
        raise NotImplementedError


class SrtFormat(SubtitleFormat):
    suffix = ".srt"

    def render(self, segments, text):
        blocks = [
            f"{i}\n{timestamp(start, ',')} --> {timestamp(end, ',')}\n{line}\n"
            for i, (start, end, line) in enumerate(_cues(segments), start=1)
        ]
        return "\n".join(blocks)


class VttFormat(SubtitleFormat):
    suffix = ".vtt"

    def render(self, segments, text):
        cues = _cues(segments)
        blocks = [f"{timestamp(start, '.')} --> {timestamp(end, '.')}\n{line}\n" for start, end, line in cues]
        return "\n".join(["WEBVTT\n", *blocks])


class JsonFormat(SubtitleFormat):
    suffix = ".json"

    def render(self, segments, text):
        return json.dumps({"text": text, "segments": [asdict(s) for s in segments]}, ensure_ascii=False) + "\n"


class TextFormat(SubtitleFormat):
    suffix = ".txt"

    def render(self, segments, text):
        return text + "\n"


FORMATS: dict[str, SubtitleFormat] = {
    "srt": SrtFormat(),
    "vtt": VttFormat(),
    "json": JsonFormat(),
    "text": TextFormat(),
}
