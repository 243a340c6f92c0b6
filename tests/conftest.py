"""Shared fixtures: tiny random Whisper models (fast) with a real Whisper tokenizer."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_whisper_config(vocab_size: int = 51864, attn: str = "sdpa", **overrides) -> WhisperConfig:
    """A Whisper of a few hundred thousand parameters with tiny.en's special token ids."""
    fields = dict(
        vocab_size=vocab_size,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=50256,
        bos_token_id=50256,
        eos_token_id=50256,
        decoder_start_token_id=50257,
    )
    fields.update(overrides)
    config = WhisperConfig(**fields)
    config._attn_implementation = attn
    return config


@pytest.fixture
def tiny_model() -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(tiny_whisper_config()).eval()
