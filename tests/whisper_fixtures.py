"""The tests' one tiny-Whisper factory: configs, models and checkpoints with the real bundled tokenizer.

`tiny_whisper_config` is the one config (tiny.en's special token ids, a few hundred thousand
parameters); `make_tiny_model` / `make_tiny_whisper_dir` build on it with a real tokenizer's ids.

The weights are random (a 64-wide, 2+2-layer model) but everything around them is real: the
bundled tokenizer and feature extractor, the special token ids, a generation config like the
hub's. So loading, generation, PEFT, merging and pipelines run exactly as with a real model,
in a fraction of a second. Import with `from whisper_fixtures import make_tiny_whisper_dir`
(pytest puts tests/ on the path); the `tiny_model` fixture in conftest.py uses it too.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile
import torch
from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.model.bundled import bundled_processor

SAMPLING_RATE = 16000


@lru_cache(maxsize=2)
def tiny_processor(processor_name: str = "tiny.en"):
    """The bundled processor (cached: building the tokenizer takes a few seconds)."""
    return bundled_processor(processor_name)


def tiny_whisper_config(vocab_size: int = 51864, attn: str | None = "sdpa", **overrides) -> WhisperConfig:
    """A Whisper of a few hundred thousand parameters with tiny.en's special token ids; `overrides` set any field.

    `attn`: the attention kernel; None leaves it to the model (what a saved checkpoint should carry).
    """
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
    if attn is not None:
        config._attn_implementation = attn
    return config


def tiny_config(tokenizer, max_target_positions: int = 448) -> WhisperConfig:
    """`tiny_whisper_config`, 64 wide, with `tokenizer`'s vocabulary and special token ids."""
    eot = tokenizer.eos_token_id
    return tiny_whisper_config(
        vocab_size=len(tokenizer),
        attn=None,
        d_model=64,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_target_positions=max_target_positions,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
    )


def tiny_generation_config(tokenizer, config: WhisperConfig, max_length: int) -> GenerationConfig:
    ids = tokenizer.convert_tokens_to_ids
    eot = tokenizer.eos_token_id
    multilingual = config.vocab_size >= 51865
    extra = {}
    if multilingual:
        languages = TranscriptEncoder(tokenizer).known_languages() or set()
        extra["lang_to_id"] = {f"<|{code}|>": ids(f"<|{code}|>") for code in sorted(languages)}
        extra["task_to_id"] = {task: ids(f"<|{task}|>") for task in ("transcribe", "translate")}
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=multilingual,
        # A random model would otherwise emit <|notimestamps|> & co., which decode to "".
        suppress_tokens=[i for i in tokenizer.all_special_ids if i != eot]
        + list(range(ids("<|0.00|>"), len(tokenizer))),
        begin_suppress_tokens=[ids(" ") if ids(" ") != tokenizer.unk_token_id else 220, eot],
        max_length=max_length,
        return_timestamps=False,
        forced_decoder_ids=None,
        **extra,
    )


def make_tiny_model(processor_name: str = "tiny.en", seed: int = 0, max_length: int = 16):
    """(model, processor): a random tiny Whisper in eval mode with a generation config."""
    processor = tiny_processor(processor_name)
    torch.manual_seed(seed)
    config = tiny_config(processor.tokenizer)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = tiny_generation_config(processor.tokenizer, config, max_length)
    return model, processor


def make_tiny_whisper_dir(tmp_path: Path, processor_name: str = "tiny.en", seed: int = 0, max_length: int = 16) -> Path:
    """A complete HF folder (weights, config, processor, generation config) under tmp_path.

    `max_length` is small so that a random model, which rarely emits <|endoftext|>, stops fast.
    """
    model, processor = make_tiny_model(processor_name, seed, max_length)
    folder = Path(tmp_path) / f"tiny-whisper-{processor_name}-{seed}"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def write_tone(path: Path, seconds: float = 1.0, frequency: float = 440.0, seed: int = 0) -> Path:
    """A 16 kHz mono wav: a tone plus a little noise (distinct per seed, so models disagree)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    audio = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.05 * rng.standard_normal(t.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio.astype(np.float32), SAMPLING_RATE)
    return path
