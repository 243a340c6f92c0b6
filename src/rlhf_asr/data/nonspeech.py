"""Audio in which nothing is said, for mining pairs whose chosen transcript is empty.

Two sources, both written as 16 kHz mono WAV clips of at most 30 s (Whisper's window) so that a
preference row can point at them like at any other audio:

- `generate_nonspeech`: clips made here (`synth_audio`), for users who have none. Kinds cycle
  through NONSPEECH_KINDS, so any N >= len(NONSPEECH_KINDS) holds every kind; duration and level
  are drawn from a Generator seeded by (seed, clip index): the same seed gives the same clips.
  About 0.36 MB a clip: N that would not fit on the disk is refused before the first is written.
- `nonspeech_windows`: the user's own noise, music or silence files, any length and any format
  soundfile reads, cut into equal windows of at most 30 s (a 70 s file gives 3 of 23.3 s rather
  than a 10 s tail). A file that cannot be used (empty, permission denied, a symlink loop, not
  audio) is named in one log line and counted, never silently dropped; a folder with none usable stops.

`pad_speech` puts silence or such sound before and after a speech clip, for the padded pairs.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
from tqdm import tqdm

from rlhf_asr.data import synth_audio as synth
from rlhf_asr.data.audio import WHISPER_MAX_SECONDS, WHISPER_SAMPLING_RATE, AudioError, check_audio_path, load_audio
from rlhf_asr.errors import UserInputError

logger = logging.getLogger(__name__)

DURATIONS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0)  # seconds
LEVELS = (-60.0, -45.0, -30.0, -20.0)  # dBFS RMS: from a quiet room to loud background
WAV_BYTES = (2, 44)  # (bytes per sample, header bytes) of a 16-bit mono WAV
FREE_SHARE = 0.9  # of the free disk the clips may take: the pairs and the training run need room too


def _mixture(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Music, tone or hum under noise, the noise 0-20 dB below."""
    colour = str(rng.choice(list(synth.NOISE_COLOURS)))
    foreground = (synth.chords, synth.arpeggio, synth.tone, synth.hum)[int(rng.integers(4))](seconds, rng)
    background = synth.noise(seconds, colour, rng) * 10 ** (-rng.uniform(0, 20) / 20)
    return synth.unit_rms(foreground + background)


def _coloured(colour: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    return synth.noise(seconds, colour, rng)


# Each maker returns a unit-RMS sound (silence: zeros) of `seconds` from `rng`.
NONSPEECH_KINDS: dict[str, Callable[[float, np.random.Generator], np.ndarray]] = {
    "silence": lambda seconds, rng: synth.silence(seconds),
    **{f"{colour}_noise": functools.partial(_coloured, colour) for colour in synth.NOISE_COLOURS},
    "band_noise": synth.band_noise,
    "tone": synth.tone,
    "hum": synth.hum,
    "chords": synth.chords,
    "arpeggio": synth.arpeggio,
    "mixture": _mixture,
}


@dataclass(frozen=True)
class NonSpeechClip:
    path: Path
    duration: float  # seconds
    kind: str  # a NONSPEECH_KINDS name, or "file" for the user's own
    where: str  # "generated:3", "nonspeech_dir:music/a.mp3#1": names the clip in progress files and logs


def _draw(index: int, seed: int, durations: Sequence[float], levels: Sequence[float]):
    rng = np.random.default_rng([seed, index])
    names = list(NONSPEECH_KINDS)
    return names[index % len(names)], float(rng.choice(durations)), float(rng.choice(levels)), rng


def nonspeech_plan(
    index: int, seed: int, durations: Sequence[float] = DURATIONS, levels: Sequence[float] = LEVELS
) -> tuple[str, float, float]:
    """(kind, duration, level) of generated clip `index`, without making its sound."""
    return _draw(index, seed, durations, levels)[:3]


def make_nonspeech(
    index: int, seed: int, durations: Sequence[float] = DURATIONS, levels: Sequence[float] = LEVELS
) -> tuple[str, float, float, np.ndarray]:
    """(kind, duration, level, samples [frames]) of generated clip `index`; the same for the same arguments."""
    kind, duration, level, rng = _draw(index, seed, durations, levels)
    return kind, duration, level, synth.at_level(NONSPEECH_KINDS[kind](duration, rng), level)


def generate_nonspeech(
    count: int,
    seed: int,
    folder: str | Path,
    durations: Sequence[float] = DURATIONS,
    levels: Sequence[float] = LEVELS,
) -> list[NonSpeechClip]:
    """Write `count` generated clips under `folder` (16-bit 16 kHz WAV) and return them.

    Refuses (UserInputError) a `count` the disk would not hold, before writing; shows a progress bar.
    """
    if any(not 0 < d <= WHISPER_MAX_SECONDS for d in durations):
        raise ValueError(f"durations must lie in (0, {WHISPER_MAX_SECONDS:g}] s, got {list(durations)}")
    folder = Path(folder)
    needed = check_nonspeech_space(count, folder, durations)
    logger.info(f"--generate_nonspeech: writing {count} clips (about {_size(needed)}) to {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for index in tqdm(range(count), desc="non-speech clips", unit="clip"):
        kind, duration, level, samples = make_nonspeech(index, seed, durations, levels)
        level_name = "digital" if kind == "silence" else f"{-level:g}dB"
        path = folder / f"{index:04d}_{kind}_{duration:g}s_{level_name}.wav"
        soundfile.write(path, samples, synth.SAMPLING_RATE, subtype="PCM_16")
        clips.append(NonSpeechClip(path, samples.size / synth.SAMPLING_RATE, kind, f"generated:{index}"))
    return clips


def nonspeech_folder(output: Path) -> Path:
    """Where make-pairs writes the clips of the pairs file `output`: generated/, dir/ and padded/."""
    return output.with_name(output.stem + ".nonspeech")


def generated_folder(output: Path) -> Path:
    """Where make-pairs writes the `generate_nonspeech` clips of the pairs file `output`."""
    return nonspeech_folder(output) / "generated"


def nonspeech_bytes(count: int, durations: Sequence[float] = DURATIONS) -> int:
    """Expected size on disk of `count` generated clips, their durations drawn uniformly from `durations`."""
    per_second = synth.SAMPLING_RATE * WAV_BYTES[0]
    return round(count * (sum(durations) / len(durations) * per_second + WAV_BYTES[1]))


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


def check_nonspeech_space(count: int, folder: str | Path, durations: Sequence[float] = DURATIONS) -> int:
    """The bytes `count` clips take in `folder`; UserInputError when they would not fit on its disk.

    Clips of an earlier run in `folder` are overwritten, so their bytes count as free.
    """
    needed, folder = nonspeech_bytes(count, durations), Path(folder).expanduser().absolute()
    existing = next(path for path in (folder, *folder.parents) if path.exists())  # "/" always does
    free = shutil.disk_usage(existing).free
    free += sum(path.stat().st_size for path in folder.glob("*.wav")) if folder.is_dir() else 0
    if needed > FREE_SHARE * free:
        fit = int(FREE_SHARE * free / max(1, nonspeech_bytes(1, durations)))
        raise UserInputError(
            f"--generate_nonspeech {count}: the clips need about {_size(needed)} in {folder}, where the disk has "
            f"{_size(free)} free; ask for fewer (about {fit} fit, keeping a tenth free) or free some space"
        )
    return needed


def check_nonspeech_options(generate: int, nonspeech_dir: str | Path | None, pad_silence: float) -> None:
    """UserInputError naming the option, before any data or model is read."""
    if isinstance(generate, bool) or not isinstance(generate, int) or generate < 0:
        raise UserInputError(f"--generate_nonspeech must be a whole number >= 0, not {generate!r}")
    if not math.isfinite(pad_silence) or not 0 <= pad_silence <= WHISPER_MAX_SECONDS:
        raise UserInputError(f"--pad_silence must be 0-{WHISPER_MAX_SECONDS:g} seconds, not {pad_silence!r}")
    if nonspeech_dir is not None and not Path(nonspeech_dir).expanduser().is_dir():
        raise UserInputError(f"--nonspeech_dir {nonspeech_dir}: no such folder")


def _audio_files(directory: Path) -> list[Path]:
    """Every entry but folders and hidden files: a symlink loop, a broken link or a pipe is not a
    file either, and must be named when skipped (`_windows` says why), not passed over."""
    return sorted(path for path in directory.rglob("*") if not path.is_dir() and not path.name.startswith("."))


def _windows(path: Path, folder: Path, name: str, where: str) -> list[NonSpeechClip]:
    """Cut one readable file into equal windows of at most 30 s, written as 16 kHz mono WAV."""
    check_audio_path(path)  # empty, permission denied, a link loop: said as such, not libsndfile's "System error."
    try:
        info = soundfile.info(str(path))
    except (OSError, RuntimeError) as error:
        raise AudioError(path, f"cannot read as audio: {getattr(error, 'error_string', None) or error}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "empty (0 frames)", "empty audio")
    count = math.ceil(info.frames / (WHISPER_MAX_SECONDS * info.samplerate) - 1e-9)
    bounds = np.linspace(0, info.frames, count + 1).round().astype(int)
    clips = []
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        try:
            samples = soundfile.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)[0]
        except (OSError, RuntimeError) as error:
            raise AudioError(path, f"cannot read as audio: {error}") from None
        if not np.isfinite(samples).all():
            raise AudioError(path, "has NaN or inf samples", "non-finite audio")
        mono = samples.mean(axis=1)  # [frames]
        if info.samplerate != WHISPER_SAMPLING_RATE:
            mono = soxr.resample(mono, info.samplerate, WHISPER_SAMPLING_RATE, quality="HQ")
        mono = np.clip(mono, -1.0, 1.0)
        target = folder / f"{name}_w{index}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(target, mono, WHISPER_SAMPLING_RATE, subtype="PCM_16")
        clips.append(NonSpeechClip(target, mono.size / WHISPER_SAMPLING_RATE, "file", f"{where}#{index}"))
    return clips


def nonspeech_windows(directory: str | Path, folder: str | Path) -> tuple[list[NonSpeechClip], int]:
    """(windows of every readable file under `directory`, written under `folder`; files that could not be read).

    Each unreadable file is logged as one warning naming it and the reason.
    """
    directory, folder = Path(directory).expanduser(), Path(folder)
    if not directory.is_dir():
        raise AudioError(directory, "is not a folder (--nonspeech_dir)", "bad audio path")
    clips, unreadable = [], 0
    files = _audio_files(directory)
    for path in files:
        relative = path.relative_to(directory).as_posix()
        try:
            clips += _windows(path, folder, relative.replace("/", "__"), f"nonspeech_dir:{relative}")
        except AudioError as error:
            logger.warning(f"--nonspeech_dir: {error}; file skipped")
            unreadable += 1
    if not clips:  # the user asked for their non-speech: mining without it would not be what they asked
        what = (
            f"none of its {len(files)} file(s) could be used (the warnings above say why)"
            if files
            else "no files in it"
        )
        raise UserInputError(f"--nonspeech_dir {directory}: {what}")
    return clips, unreadable


def pad_speech(
    speech: np.ndarray, seconds: float, rng: np.random.Generator, fillers: Sequence[Path] = ()
) -> tuple[np.ndarray, float, float]:
    """(padded [frames], seconds before, seconds after): `seconds` of filler split at random around `speech`.

    The total stays within Whisper's 30 s window. The filler is digital silence, a quiet generated
    noise, or (when given) a stretch of one of `fillers`, looped if it is shorter than needed.
    """
    rate = WHISPER_SAMPLING_RATE
    room = max(0, round(WHISPER_MAX_SECONDS * rate) - speech.size)
    frames = min(round(seconds * rate), room)
    filler = _filler(frames, rng, fillers)  # [frames]
    before = int(rng.integers(0, frames + 1))
    padded = np.concatenate([filler[:before], speech, filler[before:]]).astype(np.float32)
    return padded, before / rate, (frames - before) / rate


def _filler(frames: int, rng: np.random.Generator, fillers: Sequence[Path]) -> np.ndarray:
    choice = int(rng.integers(3 if fillers else 2))
    if frames == 0 or choice == 0:
        return np.zeros(frames, dtype=np.float32)
    if choice == 1:
        colour = str(rng.choice(list(synth.NOISE_COLOURS)))
        return synth.at_level(synth.noise(frames / WHISPER_SAMPLING_RATE, colour, rng), float(rng.choice(LEVELS)))
    sound = load_audio(fillers[int(rng.integers(len(fillers)))])
    start = int(rng.integers(sound.size))
    return np.resize(np.roll(sound, -start), frames)  # resize repeats the sound when it is too short
