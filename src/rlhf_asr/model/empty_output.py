"""Letting a trained model write nothing where it is deployed: <|endoftext|> allowed as the first token.

Whisper's generation config sets `begin_suppress_tokens` = [" ", <|endoftext|>]: `generate`, the
`transformers` pipeline and, through the CTranslate2 converter (`suppress_ids_begin`), faster-whisper's
`suppress_blank` all forbid ending before the first text token. A model trained to end right after the
prompt on silence (`data/nospeech_target.EndOfText`) then writes "." or "you" instead. The trained
model's saved generation config drops <|endoftext|> from that list (the blank " " stays suppressed);
it is written into the adapter folder (PEFT saves none; `model.loading` reads it back), the merged
folder, and from there the CTranslate2 export. Whisper's openai `transcribe` applies the same rule in
code (`SuppressBlank`), not from a config: there the no-speech path (`--nospeech_target nospeech`) is
what skips a silent window.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rlhf_asr.model.core import whisper_generation_config

logger = logging.getLogger(__name__)

GENERATION_CONFIG = "generation_config.json"


def lets_empty_output(generation_config, eot: int) -> bool:
    """Whether decoding with this config may end at once (<|endoftext|> not suppressed at the start)."""
    return eot not in (getattr(generation_config, "begin_suppress_tokens", None) or [])


def allow_empty_output(model, eot: int) -> bool:
    """Drops <|endoftext|> from the model's `begin_suppress_tokens`; True when that changed anything."""
    config = whisper_generation_config(model)
    if lets_empty_output(config, eot):
        return False
    config.begin_suppress_tokens = [token for token in config.begin_suppress_tokens if token != eot]
    return True


def save_generation_config(model, folder: str | Path) -> Path:
    """Writes the model's generation config into `folder` (an adapter folder has none of its own)."""
    whisper_generation_config(model).save_pretrained(str(folder))
    return Path(folder) / GENERATION_CONFIG
