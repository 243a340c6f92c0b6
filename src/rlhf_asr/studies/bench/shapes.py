"""Whisper model shapes, randomly initialised, so a benchmark needs no download.

Memory and time depend on the shape of a model, not on its weights: a random `tiny` costs what
the real `openai/whisper-tiny` costs. `--model` may instead name a local checkpoint folder (or a
bundled name), which is then loaded as training would load it.
"""

from __future__ import annotations

import torch

from rlhf_asr.model.architecture import Dims
from rlhf_asr.model.architecture import build_model as instantiate
from rlhf_asr.model.architecture import whisper_config as config_of

# name -> dimensions (encoder = decoder); the OpenAI model card dims.
_DIMS: dict[str, Dims] = {
    "tiny": Dims(384, 4, 4, 6, 6, 1536, 1536),
    "base": Dims(512, 6, 6, 8, 8, 2048, 2048),
    "small": Dims(768, 12, 12, 12, 12, 3072, 3072),
    "medium": Dims(1024, 24, 24, 16, 16, 4096, 4096),
    "large-v3": Dims(1280, 32, 32, 20, 20, 5120, 5120, vocab_size=51866, num_mel_bins=128),
}
SHAPES = tuple(_DIMS)


def whisper_config(name: str):
    """The WhisperConfig of a named shape (multilingual token ids; large-v3: 128 mels, 51866 tokens)."""
    config = config_of(
        _DIMS[name], pad_token_id=50257, bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258
    )
    config._attn_implementation = "sdpa"
    return config


def build_model(name_or_path: str, device: str = "cpu", seed: int = 0):
    """A trainable Whisper: a random model of a named shape, or a checkpoint from a folder."""
    if name_or_path in _DIMS:
        torch.manual_seed(seed)
        return instantiate(whisper_config(name_or_path), device)
    from rlhf_asr.model.loading import resolve_model_source
    from rlhf_asr.model.peft_setup import load_training_model

    return load_training_model(resolve_model_source(name_or_path), attn_implementation="sdpa").to(device)
