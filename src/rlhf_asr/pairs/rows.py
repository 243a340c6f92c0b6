"""The one builder of a preference row, for every writer: make-pairs' miner, the demo's pairs
from its own transcripts, and its non-speech pairs.

A row is what `data/manifest.read_preference_manifest` reads back: the audio, its duration in
seconds (3 decimals), the preferred and rejected transcripts and the language, then whatever the
writer adds (its kind, what rejected it, its source row, the rejected's scores to 4 decimals).
Keys keep that order: rows are JSON lines, and the demo's files are compared byte for byte.
"""

from __future__ import annotations

KINDS = ("speech", "no_speech", "padded", "loop")  # a mined row's `kind` (choice.py says what each is)


def preference_row(
    audio_path: str,
    duration: float,
    chosen: str,
    rejected: str,
    language: str | None,
    *,
    wer: float | None = None,
    logprob: float | None = None,
    **extra,
) -> dict:
    """{"audio": {"path"}, "duration", "chosen", "rejected", "language", *extra, "rejected_wer",
    "rejected_logprob"}: `extra` in the order given; each score only where there is one.

    `duration` in seconds; `wer` the rejected's error rate against `chosen`; `logprob` the model's
    mean per-token log-prob of its whole output.
    """
    row = {
        "audio": {"path": audio_path},
        "duration": round(duration, 3),
        "chosen": chosen,
        "rejected": rejected,
        "language": language,
        **extra,
    }
    if wer is not None:
        row["rejected_wer"] = round(wer, 4)
    if logprob is not None:
        row["rejected_logprob"] = round(logprob, 4)
    return row
