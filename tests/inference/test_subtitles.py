"""Subtitle files (`inference/subtitles.py`): SRT and WebVTT as players parse them, JSON, text."""

from __future__ import annotations

import json
import re

import pytest

from rlhf_asr.inference.longform import TimedSegment
from rlhf_asr.inference.subtitles import FORMATS, timestamp

SEGMENTS = (
    TimedSegment(0.0, 1.0, "first line"),
    TimedSegment(1.0, 3.56, " second line "),
    TimedSegment(62.5, 62.5, "at a minute"),  # zero length: Whisper can end on one
    TimedSegment(3725.0, 3726.0049, "after an hour"),
)
SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"


def _seconds(h, m, s, ms) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [(0, "00:00:00,000", "00:00:00.000"), (1.0, "00:00:01,000", "00:00:01.000"),
     (61.2345, "00:01:01,234", "00:01:01.234"), (3725.9996, "01:02:06,000", "01:02:06.000")],
)  # fmt: skip
def test_timestamps(seconds, srt, vtt):
    assert timestamp(seconds, ",") == srt and timestamp(seconds, ".") == vtt


def test_srt_cues_numbered_timed_and_monotone():
    text = FORMATS["srt"].render(SEGMENTS, "")
    blocks = text.strip().split("\n\n")
    assert len(blocks) == len(SEGMENTS)
    previous_end = 0.0
    for number, (block, segment) in enumerate(zip(blocks, SEGMENTS), start=1):
        index, times, line = block.split("\n")
        assert index == str(number)
        match = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", times)
        assert match, times
        start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:])
        assert previous_end <= start <= end and start == pytest.approx(segment.start, abs=1e-3)
        assert line == segment.text.strip()
        previous_end = end
    assert text.startswith("1\n00:00:00,000 --> 00:00:01,000\nfirst line\n\n2\n00:00:01,000 --> 00:00:03,560\n")


def test_vtt_header_and_dot_times():
    text = FORMATS["vtt"].render(SEGMENTS, "")
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nfirst line\n\n")
    assert "01:02:05.000 --> 01:02:06.005\nafter an hour" in text
    assert "," not in text.split("\n", 2)[2].split("\n")[0]  # VTT times use a dot


def test_json_and_text_keep_the_transcript():
    data = json.loads(FORMATS["json"].render(SEGMENTS[:2], "first line second line"))
    assert data["text"] == "first line second line"
    assert data["segments"][1] == {"start": 1.0, "end": 3.56, "text": " second line "}
    assert FORMATS["text"].render(SEGMENTS, "all of it") == "all of it\n"


def test_blank_segments_are_dropped_and_cues_renumbered():
    segments = (TimedSegment(0, 1, "  "), TimedSegment(1, 2, "kept"))
    assert FORMATS["srt"].render(segments, "kept") == "1\n00:00:01,000 --> 00:00:02,000\nkept\n"
