"""Whisper model shapes, randomly initialised, so a benchmark needs no download.

Memory and time depend on the shape of a model, not on its weights: a random `tiny` costs what
the real `openai/whisper-tiny` costs. `--model` may instead name a local checkpoint folder (or a
bundled name), which is then loaded as training would load it.
"""

from __future__ import annotations

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

# name -> (d_model, layers (encoder = decoder), attention heads, ffn dim); the OpenAI model card dims.
_DIMS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (384, 4, 6, 1536),
    "base": (512, 6, 8, 2048),
    "small": (768, 12, 12, 3072),
    "medium": (1024, 24, 16, 4096),
    "large-v3": (1280, 32, 20, 5120),
    # Hidden: a few-hundred-thousand-parameter shape for tests of the benchmark plumbing.
    "test-micro": (32, 2, 4, 64),
}
SHAPES = tuple(name for name in _DIMS if not name.startswith("test-"))


def whisper_config(name: str) -> WhisperConfig:
    """The WhisperConfig of a named shape (multilingual token ids; large-v3: 128 mels, 51866 tokens)."""
    d_model, layers, heads, ffn = _DIMS[name]
    large_v3 = name == "large-v3"
    config = WhisperConfig(
        vocab_size=51866 if large_v3 else 51865,
        num_mel_bins=128 if large_v3 else 80,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=50257,
        bos_token_id=50257,
        eos_token_id=50257,
        decoder_start_token_id=50258,
    )
    config._attn_implementation = "sdpa"
    return config


def build_model(name_or_path: str, device: str = "cpu", seed: int = 0) -> WhisperForConditionalGeneration:
    """A trainable Whisper: a random model of a named shape, or a checkpoint from a folder."""
    if name_or_path in _DIMS:
        torch.manual_seed(seed)
        # Built directly on the device: initialising large-v3 on CPU first would take minutes.
        with torch.device(device):
            return WhisperForConditionalGeneration(whisper_config(name_or_path))
    from rlhf_asr.model.loading import resolve_model_source
    from rlhf_asr.model.peft_setup import load_training_model

    return load_training_model(resolve_model_source(name_or_path), attn_implementation="sdpa").to(device)
