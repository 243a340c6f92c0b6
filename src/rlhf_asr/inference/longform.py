"""Audio of any length: Whisper's sequential long-form decoding, as transformers implements it.

Whisper hears 30 s at a time. OpenAI's `transcribe()` walks a longer file window by window: each
window is decoded with timestamps, the next window starts at the last complete segment's end,
the previous window's text is the next one's prompt, and a window whose text looks wrong
(too repetitive, too improbable) is decoded again at a higher temperature; a window the model
calls silence is skipped. `WhisperForConditionalGeneration.generate` implements exactly that
when given features longer than 3000 frames (with an attention mask for batches) and
`return_timestamps=True`; this module only prepares its inputs, passes the thresholds OpenAI
uses (`LongFormOptions`) and turns its segments into `TimedSegment`s. The same call is what
`transformers.pipeline("automatic-speech-recognition", chunk_length_s=None)` makes for a long
file (tests/inference/test_longform.py compares the two), so deployed models decode the same way.

Audio up to 30 s goes through the same loop (one window, timestamps on), so every file of a
`transcribe --timestamps` run gets segments. PEFT models decode through their Whisper core:
LoRA layers are injected in place, so the core's `generate` runs the adapted weights.

Segment times are clipped to the file's own length: the model's timestamps count within a 30 s
window, so the last segment of a short file can end well after the audio does. `progress` reports
the seconds decoded, window by window (`generate`'s `monitor_progress`), for a bar on long files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlhf_asr.errors import UserInputError

if TYPE_CHECKING:
    import numpy as np

# Imported inside the functions (torch, numpy, the decoding layer): `rlhf-asr transcribe --help`
# parses `LongFormOptions` and must not import torch.
OPENAI_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # openai/whisper transcribe(): 0 to 1 by 0.2
# Said by transformers' own Whisper long-form loop on every call (it passes both itself): nothing
# a caller can change, so it is dropped unless the run is verbose (`-v` shows library warnings).
GENERATION_CONFIG_DEPRECATION = "Passing `generation_config` together with generation-related arguments"


class _QuietGenerationConfigDeprecation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        verbose = logging.getLogger("rlhf_asr").isEnabledFor(logging.DEBUG)
        return verbose or GENERATION_CONFIG_DEPRECATION not in record.getMessage()


# A plain logging.Logger by name: transformers' get_logger returns this same object when imported.
logging.getLogger("transformers.generation.utils").addFilter(_QuietGenerationConfigDeprecation())


@dataclass(frozen=True)
class LongFormOptions:
    """Long-form decoding settings; the defaults are openai/whisper's `transcribe()` defaults.

    Plain types with help texts, so `rlhf-asr transcribe` parses them as options as they are.
    """

    # Tried in turn for a window that fails a check below: 0 is greedy (or beam search), above 0 samples.
    temperature: list[float] = field(
        default_factory=lambda: list(OPENAI_TEMPERATURES),
        metadata={
            "help": "temperatures tried in turn for a window that fails a check (openai's fallback); "
            "numbers separated by spaces or commas, up to the first word that is not one (an audio file)"
        },
    )
    # A window's text whose zlib compression ratio is above this repeats itself: decoded again, hotter.
    compression_ratio_threshold: float | None = field(
        default=2.4, metadata={"help": "above this compression ratio a window is decoded again, hotter"}
    )
    # A window whose mean token log-prob is below this is decoded again, hotter (None: no check).
    logprob_threshold: float | None = field(
        default=-1.0, metadata={"help": "below this mean token log-prob a window is decoded again, hotter"}
    )
    # A window whose <|nospeech|> probability is above this (and log-prob below the threshold above) is skipped.
    no_speech_threshold: float | None = field(
        default=0.6, metadata={"help": "above this no-speech probability (and a low log-prob) a window is skipped"}
    )
    # Prompt each window with the text decoded so far (openai's condition_on_previous_text).
    condition_on_prev_tokens: bool = field(
        default=True, metadata={"help": "prompt each 30 s window with the text decoded before it"}
    )

    def __post_init__(self):
        temperatures = list(self.temperature)
        if not temperatures or any(not 0 <= t <= 2 for t in temperatures):
            given = " ".join(f"{t:g}" for t in temperatures)
            raise UserInputError(f"--temperature {given}: give one or more values from 0 to 2")
        for name in ("compression_ratio_threshold", "no_speech_threshold"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserInputError(f"--{name} {value}: must be above 0 (or None: no check)")

    def generate_kwargs(self) -> dict:
        """The options as `WhisperForConditionalGeneration.generate` keyword arguments."""
        temperatures = tuple(self.temperature)
        return dict(
            temperature=temperatures if len(temperatures) > 1 else temperatures[0],
            compression_ratio_threshold=self.compression_ratio_threshold,
            logprob_threshold=self.logprob_threshold,
            no_speech_threshold=self.no_speech_threshold,
            condition_on_prev_tokens=self.condition_on_prev_tokens,
        )


@dataclass(frozen=True)
class TimedSegment:
    start: float  # seconds from the start of the file
    end: float
    text: str


@dataclass(frozen=True)
class LongFormResult:
    text: str  # the segments' texts joined, as the pipeline returns it
    segments: tuple[TimedSegment, ...]


def long_features(processor, audios: Sequence[np.ndarray], device, dtype) -> dict:
    """`input_features` [B, 80, frames] and `attention_mask` [B, frames] for `generate`.

    Longer than 30 s: not cut, padded to the longest (the mask tells `generate` where each file
    ends); otherwise padded to the 30 s window, as short-form decoding needs. As the pipeline does.
    """
    from rlhf_asr.data.audio import WHISPER_SAMPLING_RATE

    extractor = processor.feature_extractor
    longest = max(len(audio) for audio in audios)
    extra = dict(truncation=False, padding="longest") if longest > extractor.n_samples else {}
    features = extractor(
        list(audios), sampling_rate=WHISPER_SAMPLING_RATE, return_tensors="pt", return_attention_mask=True, **extra
    )
    return {
        "input_features": features.input_features.to(device=device, dtype=dtype),  # [B, 80, frames]
        "attention_mask": features.attention_mask.to(device),  # [B, frames]
    }


def clip_segment(start: float, end: float, duration: float) -> tuple[float, float]:
    """(start, end) rounded to the millisecond, inside [0, duration], start <= end.

    Whisper's timestamps count within its 30 s window, so a 10 ms file can get a segment ending at
    1 s. The limit is rounded down, so rounding never puts an end after the audio.
    """
    limit = math.floor(duration * 1000 + 1e-6) / 1000  # the 1e-6: 1.001 * 1000 is 1000.9999999999999
    end = max(0.0, min(round(end, 3), limit))
    return max(0.0, min(round(start, 3), end)), end


def _segments(processor, found: list[dict], duration: float) -> tuple[TimedSegment, ...]:
    segments = []
    for segment in found:
        text = processor.tokenizer.decode(segment["tokens"], skip_special_tokens=True).strip()
        if text:
            start, end = clip_segment(float(segment["start"]), float(segment["end"]), duration)
            segments.append(TimedSegment(start, end, text))
    return tuple(segments)


@contextlib.contextmanager
def seconds_progress(total_seconds: float, *, file=None, desc: str = "transcribe") -> Iterator[Callable[[float], None]]:
    """A tqdm bar over seconds of audio on stderr; yields `update(seconds decoded so far)`.

    Shown on a terminal only (tqdm's own rule: a log file gets no carriage-return lines) and not with
    `--quiet` (the rlhf_asr logger above INFO), as the CLI's other notes. Log lines print above it.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    quiet = not logging.getLogger("rlhf_asr").isEnabledFor(logging.INFO)
    total = max(1, math.ceil(total_seconds))
    bar = tqdm(total=total, desc=desc, unit="s", file=file or sys.stderr, disable=True if quiet else None)
    with bar, logging_redirect_tqdm(loggers=[logging.getLogger("rlhf_asr")]):
        yield lambda seconds: bar.update(min(int(seconds), total) - bar.n)
        bar.update(total - bar.n)  # all decoded: the last partial second too


def _window_progress(report: Callable[[float], None], before: float, seconds: list[float]):
    """`generate`'s `monitor_progress` for one batch: its rows' (seek, frames) as seconds decoded in all."""

    def monitor(positions) -> None:  # [B, 2] tensor: frame reached, frames of the row
        done = sum(s * min(1.0, seek / max(frames, 1)) for s, (seek, frames) in zip(seconds, positions.tolist()))
        report(before + done)

    return monitor


def _batches(keys: list, batch_size: int) -> list[range]:
    """Index ranges decoded together: consecutive rows of equal key, at most `batch_size`.

    The key keeps apart what one `generate` call cannot mix: rows with a given language and rows
    to detect (it takes languages for all rows or none), and files up to 30 s and longer ones (a
    short file batched with long ones is decoded by the long-form loop, alone by the short-form
    one, and the two can differ in the last tokens: a file's text would depend on its neighbours).
    """
    batches: list[range] = []
    start = 0
    for end in range(1, len(keys) + 1):
        if end == len(keys) or end - start == batch_size or keys[end] != keys[start]:
            batches.append(range(start, end))
            start = end
    return batches


def transcribe_long(
    model,
    processor,
    audios: Sequence[np.ndarray],
    *,
    language=None,
    task: str = "transcribe",
    options: LongFormOptions | None = None,
    num_beams: int | None = None,
    batch_size: int = 8,
    progress: Callable[[float], None] | bool = False,
) -> list[LongFormResult]:
    """Per 16 kHz audio of any length, its text and timed segments (Whisper's long-form decoding).

    `language`: one for all, one per audio, or None (English-only models: English; multilingual:
    detected per file by `generate`). `num_beams` None: the generation config's (see `_decode`). Temperatures above
    0 sample, so seed torch for repeatable runs. `progress`: True for a bar on stderr
    (`seconds_progress`), or a function called with the seconds of audio decoded so far.
    """
    from rlhf_asr.data.audio import WHISPER_SAMPLING_RATE
    from rlhf_asr.inference.decode import _per_row, check_language

    languages = [check_language(processor, lang) for lang in _per_row(language, len(audios))]  # before a bar
    seconds = [len(audio) / WHISPER_SAMPLING_RATE for audio in audios]
    bar = seconds_progress(sum(seconds)) if progress is True else contextlib.nullcontext(progress or None)
    with bar as report:
        return _decode(model, processor, audios, seconds, languages, task, options, num_beams, batch_size, report)


def _decode(model, processor, audios, seconds, languages, task, options, num_beams, batch_size, report):
    """`transcribe_long` after its checks: batch by batch through `generate`, `report`ing seconds done."""
    import torch

    from rlhf_asr.model.core import whisper_core

    options = options or LongFormOptions()
    core = whisper_core(model)
    multilingual = bool(getattr(core.generation_config, "is_multilingual", False))
    # Not the pipeline's 5 beams by default: transformers' long-form beam search fails on some windows
    # (IndexError in `generate`, the pipeline's too: tests/inference/test_longform.py), so the generation config's.
    extra = {"num_beams": num_beams} if num_beams is not None else {}
    results: list[LongFormResult] = []
    window = processor.feature_extractor.n_samples
    keys = [(multilingual and lang is None, len(audio) > window) for lang, audio in zip(languages, audios)]
    decoded = 0.0  # seconds of audio in the batches done
    for rows in _batches(keys, batch_size):
        inputs = long_features(processor, [audios[i] for i in rows], core.device, core.dtype)
        if multilingual:
            extra["task"] = task
            given = [languages[i] for i in rows]
            extra["language"] = given if given[0] is not None else None
        if report is not None:
            extra["monitor_progress"] = _window_progress(report, decoded, [seconds[i] for i in rows])
        with torch.no_grad():
            out = core.generate(
                **inputs, return_timestamps=True, return_segments=True, **options.generate_kwargs(), **extra
            )
        texts = processor.tokenizer.batch_decode(out["sequences"], skip_special_tokens=True)
        for i, text, found in zip(rows, texts, out["segments"]):
            results.append(LongFormResult(text.strip(), _segments(processor, found, seconds[i])))
        decoded += sum(seconds[i] for i in rows)
        if report is not None:
            report(decoded)
    return results
