"""Shared by the review tests: a small dataset of tones with made-up candidates, and a server process."""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_asr.review.clips import fingerprint, read_clips
from rlhf_asr.review.store import MODEL, ReviewStore
from whisper_fixtures import write_tone


def candidates_of(i: int) -> list[tuple[str, str, float | None]]:
    """Clip i's candidates: two of the model's (differing in one word), then its reference."""
    return [(MODEL, f"clip {i} one", -0.1), (MODEL, f"clip {i} won", -0.2), ("reference", f"clip {i} 1", None)]


def make_review_data(folder: Path, clips: int = 6, texts: dict[int, str] | None = None) -> tuple[Path, Path]:
    """(manifest, database): `clips` tones with references, candidates stored; texts overrides a candidate 0."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(1, clips + 1):
        write_tone(folder / f"c{i}.wav", seconds=0.6, frequency=200 + 50 * i, seed=i)
        rows.append({"audio": {"path": f"c{i}.wav"}, "duration": 0.6, "sentence": f"clip {i} 1"})
    manifest = folder / "clips.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    db = folder / "review.sqlite"
    store = ReviewStore(db)
    found = read_clips(manifest)
    store.attach_dataset(found, fingerprint(found, manifest), str(manifest))
    added = []
    for i in range(1, clips + 1):
        candidates = candidates_of(i)
        if texts and i in texts:
            candidates[0] = (MODEL, texts[i], -0.1)
        added.append((i, candidates))
    store.add_candidates(added)
    return manifest, db


def write_annotators(folder: Path, file: str = "annotators.txt", **tokens: str) -> Path:
    path = folder / file
    path.write_text("".join(f"{name} {token}\n" for name, token in tokens.items()), encoding="utf-8")
    return path
