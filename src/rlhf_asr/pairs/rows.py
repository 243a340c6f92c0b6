"""The one builder of make-pairs' rows, for every writer: make-pairs' miner (pairs and K-best
rows), the demo's pairs from its own transcripts, and its non-speech pairs.

A preference row is what `data/manifest.read_preference_manifest` reads back: the audio, its
duration in seconds (3 decimals), the preferred and rejected transcripts and the language, then
whatever the writer adds (its kind, what rejected it, its source row, the rejected's scores to 4
decimals). Keys keep that order: rows are JSON lines, and the demo's files are compared byte for byte.

A K-best row (`make-pairs --nbest K`, read back with `kbest_rows=True`: training and evaluation)
has the same head, then the reference and the hypotheses in place of the two transcripts:

    {"audio": {"path": "clips/0001.wav"}, "duration": 3.2, "reference": "the right transcript",
     "candidates": [{"text": "the right transcript", "word_errors": 0, "logprob": -0.2113},
                    {"text": "the bright transcript", "word_errors": 1, "logprob": -0.4051}],
     "language": "en", "kind": "speech", "nbest_by": "tiny.en", "source": "train.asr.jsonl:1"}

`word_errors` is a whole number: the candidate's word edits against the reference under the
evaluation's normaliser (`evaluation/metrics.score_utterance`, as `evaluate` counts them; for a
no-speech reference "", its words). `logprob` is the model's mean per-token log-prob of the
hypothesis (4 decimals), where it was scored. A candidate cut to Whisper's length limit has
`"truncated": true`. The reference itself may be one of the candidates (word_errors 0).
"""

from __future__ import annotations

from collections.abc import Iterable

KINDS = ("speech", "no_speech", "padded", "loop")  # a mined row's `kind` (choice.py says what each is)


def _row(audio_path: str, duration: float, transcripts: dict, language: str | None, extra: dict) -> dict:
    """The head every row shares: audio, duration (3 decimals), the transcripts, language, then `extra`."""
    return {"audio": {"path": audio_path}, "duration": round(duration, 3), **transcripts, "language": language, **extra}


def _score(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


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
    row = _row(audio_path, duration, {"chosen": chosen, "rejected": rejected}, language, extra)
    if wer is not None:
        row["rejected_wer"] = _score(wer)
    if logprob is not None:
        row["rejected_logprob"] = _score(logprob)
    return row


def nbest_candidate(text: str, word_errors: int, logprob: float | None = None, truncated: bool = False) -> dict:
    """One entry of a K-best row's `candidates`: text, word errors, then the log-prob and the cut where there are."""
    candidate = {"text": text, "word_errors": int(word_errors)}
    if logprob is not None:
        candidate["logprob"] = _score(logprob)
    if truncated:
        candidate["truncated"] = True
    return candidate


def nbest_row(
    audio_path: str, duration: float, reference: str, candidates: Iterable[dict], language: str | None, **extra
) -> dict:
    """{"audio": {"path"}, "duration", "reference", "candidates", "language", *extra}: a K-best row
    (the module's docstring states it); `candidates` as `nbest_candidate` makes them, best first."""
    return _row(audio_path, duration, {"reference": reference, "candidates": list(candidates)}, language, extra)
