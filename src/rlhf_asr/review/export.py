"""Judgments -> preference rows (audio, chosen, rejected) ready for `rlhf-asr train`.

chosen is the text the person chose or wrote (empty for "no speech"); rejected is the model's top
candidate when it differs from chosen (`rejected="top"`), or, with `rejected="all"`, one row for
each other distinct candidate. Skips and undone judgments are not exported; a judgment whose
chosen text is the model's own top candidate (with "top") teaches nothing new and gives no row.

A clip judged by several people (`--judges_per_clip 2`) gives one row per text they agree on
(case and spacing aside, as the page counts agreement; the first judge's text), with `judges`
saying how many agreed and `annotators` who: two identical rows would be refused by train as
duplicates. A clip whose judges disagree is left out (and counted): its pairs would contradict
each other on one audio. `keep_disagreements` keeps each of its texts, as a row of its own.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from rlhf_asr.review.store import MODEL, Judgment, ReviewStore, agreement_key

logger = logging.getLogger(__name__)
REJECTED = ("top", "all")
DISAGREE = "clip(s) where the judges disagree"


def agreeing_groups(judgments: list, text_of=lambda judgment: judgment.text) -> list[list]:
    """The judgments of one clip in groups that agree, in the order each text was first given."""
    groups: dict[str, list] = {}
    for judgment in judgments:
        groups.setdefault(agreement_key(text_of(judgment)), []).append(judgment)
    return list(groups.values())


def _same(a: str, b: str) -> bool:
    return a.split() == b.split()


def preference_rows(
    store: ReviewStore, rejected: str = "top", keep_disagreements: bool = False
) -> tuple[list[dict], Counter]:
    """(rows, counts of what was left out and why)."""
    if rejected not in REJECTED:
        raise ValueError(f"rejected must be one of {REJECTED}, not {rejected!r}")
    rows, counts = [], Counter()
    by_clip: dict[int, list[Judgment]] = {}
    for judgment in store.live_judgments():
        if judgment.action == "skip":
            counts["skipped"] += 1
        else:
            by_clip.setdefault(judgment.clip_id, []).append(judgment)
    for clip_id in sorted(by_clip):
        groups = agreeing_groups(by_clip[clip_id])
        if len(groups) > 1 and not keep_disagreements:
            counts[DISAGREE] += 1
            continue
        for group in groups:
            rows += _rows_of(store, group, rejected, counts)
    return rows, counts


def _rows_of(store: ReviewStore, group: list[Judgment], rejected: str, counts: Counter) -> list[dict]:
    """The rows of judgments of one clip that agree: the first one's text and time, everyone's names."""
    judgment = group[0]
    clip, candidates = store.clip(judgment.clip_id), store.candidates(judgment.clip_id)
    model_texts = [row["text"] for row in candidates if row["origin"] == MODEL]
    if rejected == "top":
        others = [(MODEL, model_texts[0])] if model_texts else []
    else:
        others = [(row["origin"], row["text"]) for row in candidates]
    others = [(origin, text) for origin, text in others if not _same(text, judgment.text)]
    if not others:
        counts["chosen is the model's top candidate"] += 1
    rows = []
    for origin, text in others:
        row = {
            "audio": {"path": clip["audio_path"]},
            "duration": round(clip["duration"], 3),
            "chosen": judgment.text,
            "rejected": text,
            "rejected_by": origin,
            "action": judgment.action,
            "annotator": judgment.annotator,
            "judges": len(group),
            "annotators": [j.annotator for j in group],
            "judged_at": datetime.fromtimestamp(judgment.created_at, timezone.utc).isoformat(timespec="seconds"),
            "source": f"clip {judgment.clip_id} (line {clip['line']})",
        }
        if clip["language"]:
            row["language"] = clip["language"]
        rows.append(row)
    return rows


def export_pairs(
    store: ReviewStore, output: str | Path, rejected: str = "top", keep_disagreements: bool = False
) -> dict:
    rows, counts = preference_rows(store, rejected, keep_disagreements)
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
    if counts[DISAGREE]:
        logger.info("%d %s left out: --keep_disagreements writes each of their texts", counts[DISAGREE], DISAGREE)
    return {"rows": len(rows), "output": str(output), **counts}
