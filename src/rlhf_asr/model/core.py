"""The Whisper model inside whatever wraps it: one accessor every layer uses.

PEFT injects LoRA layers in place and wraps the model in a PeftModel; decoding, scoring, the
engine and loading all need the WhisperForConditionalGeneration underneath (its encoder, decoder,
`proj_out` and generation config), so they reach it here and nowhere else.
"""

from __future__ import annotations

from torch import nn


def whisper_core(model: nn.Module) -> nn.Module:
    """The WhisperForConditionalGeneration inside a PEFT wrapper (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def whisper_generation_config(model):
    """The generation config of the Whisper model inside `model`."""
    return whisper_core(model).generation_config
