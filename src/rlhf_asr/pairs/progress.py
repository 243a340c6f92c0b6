"""Resumable runs: which manifest rows an interrupted make-pairs already did, read back from its files.

Every processed utterance is listed, by manifest line (its `source`), in `<output>.progress` with
its status; pairs carry their `source` too. Both files are flushed after each batch, pairs first,
so a row marked done always has its pair on disk; a rerun skips what either lists. Edit the ASR
manifest only between fresh runs (`resume` False, the command's --no_resume).
"""

from __future__ import annotations

import json
from pathlib import Path


def progress_path(output: Path) -> Path:
    """`<output>.progress`, beside the pairs file."""
    return output.with_name(output.name + ".progress")


def status_line(where: str, status: str) -> str:
    """The progress file's line for one processed utterance (`where`: its row, the line's `source`)."""
    return json.dumps({"source": where, "status": status}) + "\n"


def prepare_outputs(output: Path, resume: bool) -> set[str]:
    """The rows (their `source`) already processed; starts both files afresh when not resuming."""
    paths = (output, progress_path(output))
    if not resume:
        for path in paths:
            path.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    for path in paths:
        done |= done_rows(path)
    return done


def done_rows(path: Path) -> set[str]:
    """`source` of each complete row; a torn last line (killed mid-write) is cut off."""
    if not path.exists():
        return set()
    done, good_bytes = set(), 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                row = json.loads(raw)
            except ValueError:
                break
            if not raw.endswith(b"\n"):
                break
            if isinstance(row, dict) and row.get("source"):
                done.add(row["source"])
            good_bytes += len(raw)
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return done
