"""Whisper's decode-time guard against words on silence: `generate`'s no-speech and log-prob thresholds.

The fix users try first, so the hallucination study measures it beside training. A window is
left empty when the probability of Whisper's no-speech token at the start of the transcript
exceeds `no_speech_threshold` AND the greedy transcript's mean token log-prob is below
`logprob_threshold` (openai-whisper's defaults: 0.6 and -1.0).

In transformers (checked in 5.x `generation_whisper.py`) the thresholds apply to short-form input
too: `generate` runs the same segment loop for a single window, and `_need_fallback` marks the
segment skipped. They need the input features, not encoder outputs (`WhisperNoSpeechDetection`
runs the model again on `input_features` to read the no-speech logit), so the guard's row runs
the encoder again. No timestamps and no `condition_on_prev_tokens` are needed (one window has no
previous one). Temperature stays 0 (one greedy pass, no sampling fallback), so the guard changes
nothing but the skipped windows and stays deterministic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rlhf_asr.data.audio import WHISPER_SAMPLING_RATE, load_audio
from rlhf_asr.model.core import whisper_core


@dataclass(frozen=True)
class DecodeGuard:
    no_speech_threshold: float = 0.6  # skip when P(no-speech token) is above this ...
    logprob_threshold: float = -1.0  # ... and the mean token log-prob is below this


def guard_transcripts(
    model, processor, paths: list[Path], guard: DecodeGuard = DecodeGuard(), batch_size: int = 8
) -> list[str]:
    """Greedy transcripts of audio files by Whisper's `generate` with the guard's thresholds ("" when skipped)."""
    core = whisper_core(model)
    options = {**asdict(guard), "temperature": 0.0}
    if getattr(core.generation_config, "is_multilingual", False):
        options["language"] = "en"
    texts = []
    for start in range(0, len(paths), batch_size):
        audios = [load_audio(path) for path in paths[start : start + batch_size]]
        features = processor.feature_extractor(
            audios, sampling_rate=WHISPER_SAMPLING_RATE, return_tensors="pt"
        ).input_features  # [B, mels, 3000]
        with torch.no_grad():
            ids = core.generate(features.to(core.device, core.dtype), **options)
        # a batch with a skipped window comes back as floats (transformers pads with a float tensor)
        decoded = processor.tokenizer.batch_decode(ids.long(), skip_special_tokens=True)
        texts += [text.strip() for text in decoded]
    return texts
