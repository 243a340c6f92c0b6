"""Shared by the manifest tests: a folder of good and bad audio files, rows and manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf


def write_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    sf.write(path, np.zeros(int(seconds * rate), np.float32), rate)
    return path


def good_row(**changes) -> dict:
    row = {"audio": {"path": "a.wav"}, "duration": 2.0, "chosen": "hello world", "rejected": "hello word"}
    row.update(changes)
    return row


def write_manifest(folder: Path, rows: list, name: str = "train.jsonl") -> Path:
    """Rows are dicts (dumped) or raw strings (written as they are), one per line."""
    path = folder / name
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


def make_audio_folder(tmp_path: Path) -> Path:
    """Good, empty, junk, NaN, long, folder, looping, broken, FIFO, cut and tiny 'audio' files in tmp_path."""
    write_wav(tmp_path / "a.wav", 2.0)
    write_wav(tmp_path / "empty.wav", 0.0)
    (tmp_path / "junk.wav").write_bytes(b"this is not audio" * 10)
    (tmp_path / "zero.wav").write_bytes(b"")
    samples = np.full(32000, 0.1, np.float32)
    samples[16000] = np.nan
    sf.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    write_wav(tmp_path / "long.wav", 35.0)
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(tmp_path / "loop.wav")
    (tmp_path / "broken.wav").symlink_to(tmp_path / "gone.wav")
    os.mkfifo(tmp_path / "fifo.wav")
    whole = write_wav(tmp_path / "whole.wav", 2.0).read_bytes()  # 16-bit samples, soundfile's default
    (tmp_path / "cut.wav").write_bytes(whole[: whole.index(b"data") + 8 + 8 * 2])  # cut after 8 samples
    write_wav(tmp_path / "tiny.wav", 8 / 16000)  # a whole file of 8 samples (0.5 ms)
    return tmp_path
