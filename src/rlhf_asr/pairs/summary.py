"""What a make-pairs run did: counted as it goes, then the summary `mine_pairs` returns and the
warnings it logs.

One Counter holds the utterances' statuses (mined, corrupted, skipped_correct, skipped_empty,
skipped_reference), the unreadable clips (errors), the rows written per kind (`KINDS`), and the
rejected transcripts (and K-best hypotheses) cut to the length limit (truncated), the rejected mined
with a repetition loop (loops), and the hypotheses written in K-best rows (hypotheses).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from rlhf_asr.pairs.rows import KINDS

logger = logging.getLogger(__name__)


class MiningCounts:
    """Counts of one run; `summary()` is its report."""

    def __init__(self):
        self.counts: Counter = Counter()

    def status(self, status: str) -> None:
        """One utterance processed (`Miner.pair`'s status)."""
        self.counts[status] += 1

    def error(self) -> None:
        """One clip whose audio could not be read."""
        self.counts["errors"] += 1

    def row(self, row: dict) -> None:
        """One row written: a pair, or a K-best row (its `candidates`)."""
        candidates = row.get("candidates")
        if candidates is None:
            self.counts["truncated"] += bool(row.get("rejected_truncated"))
            self.counts["loops"] += bool(row.get("rejected_loop")) and row["kind"] != "loop"  # mined loops
        else:
            self.counts["hypotheses"] += len(candidates)
            self.counts["truncated"] += sum(bool(candidate.get("truncated")) for candidate in candidates)
        self.counts[row["kind"]] += 1

    def warn(self) -> None:
        """The rows the user should know were changed or left out."""
        if self.counts["truncated"]:
            cut = self.counts["truncated"]
            logger.warning(f"make-pairs: {cut} rejected transcript(s) or hypotheses cut to Whisper's length limit")
        if self.counts["skipped_reference"]:
            skipped = self.counts["skipped_reference"]
            logger.warning(f"make-pairs: {skipped} utterance(s) skipped: reference cannot be trained on")

    def summary(self, *, unreadable: int, already_done: int, rows: int, output: Path) -> dict:
        """written, per status, per kind, loops, hypotheses (in K-best rows), non-speech files
        unreadable, already done in an earlier run, the manifest's rows, and the output's path."""
        counts = self.counts
        return {
            "written": counts["mined"] + counts["corrupted"] + counts["loop"],
            "mined": counts["mined"],
            "corrupted": counts["corrupted"],
            "skipped_correct": counts["skipped_correct"],
            "skipped_empty": counts["skipped_empty"],
            "skipped_reference": counts["skipped_reference"],
            "truncated": counts["truncated"],
            "errors": counts["errors"],
            **{kind: counts[kind] for kind in KINDS},
            "loops": counts["loops"],
            "hypotheses": counts["hypotheses"],
            "nonspeech_unreadable": unreadable,
            "already_done": already_done,
            "rows": rows,
            "output": str(output),
        }
