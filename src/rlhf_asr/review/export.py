"""Judgments -> preference rows (audio, chosen, rejected) ready for `rlhf-asr train`.

chosen is the text the person chose or wrote (empty for "no speech"); rejected is the model's top
candidate when it differs from chosen (`rejected="top"`), or, with `rejected="all"`, one row for
each other distinct candidate. Skips and undone judgments are not exported; a judgment whose
chosen text is the model's own top candidate (with "top") teaches nothing new and gives no row.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from rlhf_asr.review.store import MODEL, ReviewStore

logger = logging.getLogger(__name__)
REJECTED = ("top", "all")


def _same(a: str, b: str) -> bool:
    return a.split() == b.split()


def preference_rows(store: ReviewStore, rejected: str = "top") -> tuple[list[dict], Counter]:
    """(rows, counts of what was left out and why)."""
    if rejected not in REJECTED:
        raise ValueError(f"rejected must be one of {REJECTED}, not {rejected!r}")
    rows, counts = [], Counter()
    for judgment in store.live_judgments():
        if judgment.action == "skip":
            counts["skipped"] += 1
            continue
        clip = store.clip(judgment.clip_id)
        candidates = store.candidates(judgment.clip_id)
        model_texts = [row["text"] for row in candidates if row["origin"] == MODEL]
        if rejected == "top":
            others = [(MODEL, model_texts[0])] if model_texts else []
        else:
            others = [(row["origin"], row["text"]) for row in candidates]
        others = [(origin, text) for origin, text in others if not _same(text, judgment.text)]
        if not others:
            counts["chosen is the model's top candidate"] += 1
            continue
        for origin, text in others:
            row = {
                "audio": {"path": clip["audio_path"]},
                "duration": round(clip["duration"], 3),
                "chosen": judgment.text,
                "rejected": text,
                "rejected_by": origin,
                "action": judgment.action,
                "annotator": judgment.annotator,
                "judged_at": datetime.fromtimestamp(judgment.created_at, timezone.utc).isoformat(timespec="seconds"),
                "source": f"clip {judgment.clip_id} (line {clip['line']})",
            }
            if clip["language"]:
                row["language"] = clip["language"]
            rows.append(row)
    return rows, counts


def export_pairs(store: ReviewStore, output: str | Path, rejected: str = "top") -> dict:
    rows, counts = preference_rows(store, rejected)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    no_speech = sum(row["action"] == "no_speech" for row in rows)
    logger.info(
        "%d pair(s) written to %s (%d no speech: chosen is empty); left out: %s",
        len(rows),
        output,
        no_speech,
        ", ".join(f"{n} {why}" for why, n in counts.items()) or "none",
    )
    return {"rows": len(rows), "output": str(output), **counts}
