"""Trainer back ends that pass through HfArgumentParser but are not supported yet: refused up front.

DeepSpeed and FSDP parse like any TrainingArguments option, but `ORPOTrainer._save` writes the
live inner model and ignores the state dict Trainer gathers for ZeRO-3 / FSDP, so a sharded run
would save partial or empty weights. Nothing here has tested them (no multi-GPU machine), so
they are refused with one line before any data or model is loaded, instead of failing or saving
wrong weights later. Called from `ORPOConfig.__post_init__` (before TrainingArguments would try
to import DeepSpeed) and again at the top of `run_training` (for options set after parsing).
"""

from __future__ import annotations

import os

from rlhf_asr.errors import UserInputError

REASON = (
    "is not supported yet: checkpoints would not gather the sharded weights, and it is untested here. "
    "Use DDP (torchrun) instead"
)
# `accelerate launch --use_deepspeed / --use_fsdp` turns the back ends on through these.
ENVIRONMENT = {"ACCELERATE_USE_DEEPSPEED": "DeepSpeed", "ACCELERATE_USE_FSDP": "FSDP"}


def refuse_untested_backends(args) -> None:
    """Raises UserInputError when `args` (an ORPOConfig) or the environment asks for DeepSpeed or FSDP."""
    for option in ("deepspeed", "fsdp", "fsdp_config"):
        value = getattr(args, option, None)
        if value not in (None, False, "", [], {}):  # any value, "--fsdp False" included (not a valid one)
            raise UserInputError(f"--{option} {REASON}")
    for variable, name in ENVIRONMENT.items():
        if os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}:
            raise UserInputError(f"{name} ({variable}, set by `accelerate launch`) {REASON}")
