"""Training test helpers: a tiny model, tone manifests and the `train` shortcut, shared by the training tests.

Import what a test needs (`from train_fixtures import train`); the `workspace` fixture built
from them is in conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Audio, Dataset

from rlhf_asr.commands.train import parse_args as parse_training_args
from rlhf_asr.trainer.run import run_training
from whisper_fixtures import write_tone

PAIRS = [
    ("the cat sat on the mat", "the hat sat on the mat"),
    ("hello world", "yellow world"),
    ("good morning everyone", "good mourning everyone"),
    ("one two three four", "one too three for"),
    ("open the window please", "open the widow please"),
    ("it is raining today", "it is training today"),
]
METRICS = [
    "nll_loss",
    "log_odds_ratio",
    "log_odds_chosen",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
]


def write_manifest(folder: Path, name: str, pairs, language="English", tone: int = 0) -> Path:
    """Row i's audio is tone i + `tone`: manifests with other `tone` values hold other audio."""
    rows = []
    for i, (chosen, rejected) in enumerate(pairs):
        seconds = 1.0 + 0.1 * i
        write_tone(folder / "audio" / f"{name}{i}.wav", seconds, 200 + 40 * (i + tone), seed=i + tone)
        rows.append(
            {
                "audio": {"path": f"audio/{name}{i}.wav"},
                "duration": seconds,
                "chosen": chosen,
                "rejected": rejected,
                "language": language,
            }
        )
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def train_argv(workspace, output: Path, *extra: str) -> list[str]:
    return [
        "--base_model",
        str(workspace["model"]),
        "--train_data",
        str(workspace["train"]),
        "--output_dir",
        str(output),
        "--per_device_train_batch_size",
        "2",
        "--warmup_steps",
        "0",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--seed",
        "7",
        "--learning_rate",
        "5e-3",
        "--dataloader_pin_memory",
        "False",
        *extra,
    ]


def train(workspace, output: Path, *extra: str):
    return run_training(*parse_training_args(train_argv(workspace, output, *extra)))


def preference_dataset(folder: Path, pairs=PAIRS, chosen="chosen", rejected="rejected") -> Dataset:
    """The pairs as a Hugging Face dataset with an Audio column (tones), under the column names given."""
    audio = []
    for i in range(len(pairs)):
        wav = write_tone(folder / "wav" / f"{i}.wav", 1.0 + 0.1 * i, 200 + 40 * i, seed=i)
        audio.append({"bytes": wav.read_bytes(), "path": f"{i}.wav"})
    data = {"audio": audio, chosen: [c for c, _ in pairs], rejected: [r for _, r in pairs]}
    data["language"] = ["en"] * len(pairs)
    return Dataset.from_dict(data).cast_column("audio", Audio())
