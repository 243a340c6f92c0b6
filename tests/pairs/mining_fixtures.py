"""Shared by the make-pairs tests: a tiny random Whisper and an ASR manifest of four tone clips."""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_asr.model.loading import load_for_inference
from whisper_fixtures import make_tiny_whisper_dir, write_tone

TEXTS = ["the cat sat on the mat", "hello world", "good morning everyone", "see you tomorrow"]


def mining_setup(root: Path):
    """(root, model folder, model, processor): `root/asr.jsonl` holds TEXTS over tones `root/wavs/a{i}.wav`."""
    model_dir = make_tiny_whisper_dir(root)
    rows = []
    for i, text in enumerate(TEXTS):
        write_tone(root / "wavs" / f"a{i}.wav", 1.0, 300 + 100 * i, seed=i)
        rows.append({"audio": {"path": f"wavs/a{i}.wav"}, "duration": 1.0, "sentence": text})
    (root / "asr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model, processor = load_for_inference(model_dir)
    return root, model_dir, model, processor
