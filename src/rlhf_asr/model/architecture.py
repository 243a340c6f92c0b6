"""Whisper's architecture from its dimensions: one WhisperConfig builder, one way to instantiate it.

Two callers need a Whisper that no `from_pretrained` gives: the CTranslate2 importer (dimensions
read off the checkpoint's tensors, weights assigned from them) and the benchmark (named shapes,
random weights: memory and time depend on the shape, not on the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration


@dataclass(frozen=True)
class Dims:
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    encoder_ffn: int
    decoder_ffn: int
    vocab_size: int = 51865  # multilingual; English-only checkpoints have 51864, large-v3 51866
    num_mel_bins: int = 80  # large-v3: 128
    max_source_positions: int = 1500  # encoder frames of a 30 s window
    max_target_positions: int = 448  # decoder positions


def whisper_config(dims: Dims, **extra) -> WhisperConfig:
    """The WhisperConfig of `dims`; `extra` sets other config fields (token ids, attention kernel)."""
    return WhisperConfig(
        vocab_size=dims.vocab_size,
        num_mel_bins=dims.num_mel_bins,
        d_model=dims.d_model,
        encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_heads,
        decoder_attention_heads=dims.decoder_heads,
        encoder_ffn_dim=dims.encoder_ffn,
        decoder_ffn_dim=dims.decoder_ffn,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        **extra,
    )


def build_model(config: WhisperConfig, device: str | torch.device = "cpu", state: dict | None = None):
    """A Whisper of `config`: random weights built directly on `device`, or `state`'s tensors assigned.

    Random weights are initialised on the device itself (large-v3 on CPU first would take minutes).
    With `state`, the model is made on the meta device and every parameter must come from `state`
    with the right shape, nothing extra (`load_state_dict(strict=True)`; RuntimeError otherwise).
    """
    if state is None:
        with torch.device(device):
            return WhisperForConditionalGeneration(config)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    return model
