"""What make-pairs decodes: manifest rows, non-speech clips and padded speech, as one list of items.

Generated and user-supplied non-speech clips, and the padded copies of speech clips, are written as
WAV files under `<output stem>.nonspeech/` beside the pairs file, so that their preference rows
point at real audio (relative paths) like any other row. Each item names its row (`where`, a pair's
`source`: "generated:3", "nonspeech_dir:rain.flac#0", "train.jsonl:7+pad"), which is how an
interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from rlhf_asr.data.audio import WHISPER_MAX_SECONDS, WHISPER_SAMPLING_RATE, load_audio
from rlhf_asr.data.examples import AsrExample
from rlhf_asr.data.nonspeech import (
    generate_nonspeech,
    generated_folder,
    nonspeech_folder,
    nonspeech_windows,
    pad_speech,
)
from rlhf_asr.data.text_rules import SPEECH, row_kind

logger = logging.getLogger(__name__)

MIN_PAD_ROOM = 0.5  # seconds: speech clips closer than this to 30 s are not padded


@dataclass(frozen=True)
class MiningItem:
    example: AsrExample  # what the row says: audio path, duration, reference, where
    kind: str  # speech, no_speech or padded
    load: Callable[[], tuple[np.ndarray, AsrExample]]  # audio [frames] and the example as finally written


def _plain(example: AsrExample) -> MiningItem:
    return MiningItem(example, row_kind(example.text), lambda: (load_audio(example.audio_path), example))


def _padded(example: AsrExample, seconds: float, seed: int, index: int, folder: Path, fillers) -> MiningItem:
    target = folder / f"{index:06d}_{example.audio_path.stem}.wav"

    def load() -> tuple[np.ndarray, AsrExample]:
        rng = np.random.default_rng([seed, index])
        padded, _, _ = pad_speech(load_audio(example.audio_path), seconds, rng, fillers)
        target.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(target, np.clip(padded, -1.0, 1.0), WHISPER_SAMPLING_RATE, subtype="PCM_16")
        duration = padded.size / WHISPER_SAMPLING_RATE
        return padded, dataclasses.replace(example, audio_path=target, duration=duration, where=where)

    where = f"{example.where}+pad"
    return MiningItem(dataclasses.replace(example, where=where), "padded", load)


def mining_items(
    examples: list[AsrExample],
    output: Path,
    *,
    generate: int = 0,
    nonspeech_dir: str | Path | None = None,
    pad_silence: float = 0.0,
    seed: int = 0,
) -> tuple[list[MiningItem], int]:
    """(items in decoding order, non-speech files that could not be read): manifest rows, then
    non-speech clips, then padded copies of the speech rows."""
    folder = nonspeech_folder(output)
    clips, unreadable = [], 0
    if nonspeech_dir is not None:
        clips, unreadable = nonspeech_windows(nonspeech_dir, folder / "dir")
        logger.info(f"--nonspeech_dir: {len(clips)} windows of <= 30 s, {unreadable} file(s) unreadable")
    if generate:
        clips += generate_nonspeech(generate, seed, generated_folder(output))
    items = [_plain(example) for example in examples]
    # Non-speech has no language to detect: it gets the manifest's most common one (None: detected).
    languages = Counter(example.language for example in examples if example.language)
    language = languages.most_common(1)[0][0] if languages else None
    items += [_plain(AsrExample(c.path, c.duration, "", language, None, c.where)) for c in clips]
    if pad_silence > 0:
        fillers = [clip.path for clip in clips if clip.kind != "silence"]
        room = WHISPER_MAX_SECONDS - MIN_PAD_ROOM
        speech = [e for e in examples if row_kind(e.text) == SPEECH and e.duration <= room]
        items += [
            _padded(example, pad_silence, seed, index, folder / "padded", fillers)
            for index, example in enumerate(speech)
        ]
    return items, unreadable
