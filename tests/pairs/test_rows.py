"""The one preference-row builder (pairs/rows.py) and its three writers: rows byte for byte as they
were written before the writers shared it (same keys, same order, same rounding)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rlhf_asr.data.examples import AsrExample
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.pairs import loop_rows, mistake_rows, no_speech_rows, preference_row
from rlhf_asr.pairs.choice import Miner


def _lines(rows) -> list[str]:
    return [json.dumps(row, ensure_ascii=False) for row in rows]


def test_a_row_is_the_audio_the_transcripts_the_language_then_the_writers_fields_and_the_scores():
    row = preference_row("a.wav", 1.23456, "c", "r", "en", wer=0.123456, logprob=-1.234567, kind="speech", source="s")
    assert _lines([row]) == [
        '{"audio": {"path": "a.wav"}, "duration": 1.235, "chosen": "c", "rejected": "r", "language": "en", '
        '"kind": "speech", "source": "s", "rejected_wer": 0.1235, "rejected_logprob": -1.2346}'
    ]
    assert list(preference_row("a.wav", 1.0, "c", "r", None)) == ["audio", "duration", "chosen", "rejected", "language"]


def test_the_demos_rows_are_as_before():
    mistakes = mistake_rows(["a.wav", "b.wav", "c.wav"], [1.23456, 2.0, 3.3333], ["the cat", "hi there", "yes"],
                            ["the bat", "hi there", ""])  # fmt: skip
    assert [index for index, _ in mistakes] == [0] and _lines([row for _, row in mistakes]) == [
        '{"audio": {"path": "a.wav"}, "duration": 1.235, "chosen": "the cat", "rejected": "the bat", '
        '"language": "English"}'
    ]
    loops = loop_rows(["a.wav", "b.wav"], [1.23456, 2.0], ["the cat sat", "no no no"], seed=3)
    assert [index for index, _ in loops] == [0] and _lines([row for _, row in loops]) == [
        '{"audio": {"path": "a.wav"}, "duration": 1.235, "chosen": "the cat sat", '
        '"rejected": "the the the the the the", "language": "English", "kind": "loop"}'
    ]
    silent = no_speech_rows(["n/0.wav", "n/1.wav"], [1.23456, 2.0], [" you", "  "])
    assert [index for index, _ in silent] == [0] and _lines([row for _, row in silent]) == [
        '{"audio": {"path": "n/0.wav"}, "duration": 1.235, "chosen": "", "rejected": " you", "language": "English"}'
    ]


def test_the_miners_rows_are_as_before():
    miner = Miner(object(), random.Random(0), "hardest", True, "m", Path("/out"), {"words": ["dog"], "chars": []})
    example = AsrExample(Path("/out/wavs/a.wav"), 1.23456, "the cat sat on the mat", "en", None, "x.jsonl:1")
    silence = AsrExample(Path("/elsewhere/b.wav"), 2.0, "", "en", None, "x.jsonl:2")
    wrong = [Candidate("the cat sat on the hat", -0.123456), Candidate("the cat sat on the mat and and and", -2.0)]
    rows = [
        miner.pair(example, "en", wrong)[0],
        miner.pair(example, "en", [Candidate("The cat sat on the mat.", -0.1)])[0],  # corrupted
        miner.loop_pair(example, "en"),
        miner.pair(silence, "en", [Candidate(" you you you you", -0.55555)])[0],
        miner.pair(example, "en", [Candidate("the cat sat on the hat", -0.3)], "padded")[0],
    ]
    head = '{"audio": {"path": "wavs/a.wav"}, "duration": 1.235, "chosen": "the cat sat on the mat", '
    assert _lines(rows) == [
        head
        + '"rejected": "the cat sat on the mat and and and", "language": "en", "kind": "speech", "rejected_by": "m", '
        '"source": "x.jsonl:1", "rejected_wer": 0.5, "rejected_logprob": -2.0, "rejected_loop": true}',
        head + '"rejected": "the cat sat the mat", "language": "en", "kind": "speech", "rejected_by": "corruption", '
        '"source": "x.jsonl:1", "rejected_wer": 0.1667}',
        head
        + '"rejected": "the cat sat the cat sat the cat sat the cat sat the cat sat the cat sat", "language": "en", '
        '"kind": "loop", "rejected_by": "loop", "source": "x.jsonl:1", "rejected_wer": 2.3333, "rejected_loop": true}',
        '{"audio": {"path": "/elsewhere/b.wav"}, "duration": 2.0, "chosen": "", "rejected": "you you you you", '
        '"language": "en", "kind": "no_speech", "rejected_by": "m", "source": "x.jsonl:2", '
        '"rejected_logprob": -0.5555, "rejected_words": 4, "rejected_loop": true}',
        head + '"rejected": "the cat sat on the hat", "language": "en", "kind": "padded", "rejected_by": "m", '
        '"source": "x.jsonl:1", "rejected_wer": 0.1667, "rejected_logprob": -0.3}',
    ]
