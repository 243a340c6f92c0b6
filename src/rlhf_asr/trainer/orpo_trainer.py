"""The trainer's name before `--loss`: `ORPOTrainer` is `PreferenceTrainer` (trainer/preference_trainer.py)."""

from rlhf_asr.trainer.preference_trainer import (
    ADAPTER_FILE,
    FULL_MODEL_FILE,
    PreferenceTrainer,
    load_whisper_weights,
)

ORPOTrainer = PreferenceTrainer

__all__ = ["ADAPTER_FILE", "FULL_MODEL_FILE", "ORPOTrainer", "PreferenceTrainer", "load_whisper_weights"]
