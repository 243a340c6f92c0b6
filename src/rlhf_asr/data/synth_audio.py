"""Synthetic audio: non-speech sounds made from numbers, and speech spoken by espeak-ng.

Sounds. Users rarely keep recordings of their silence, room noise or background music, yet that is where
Whisper writes words that were never said ("you", "Thank you.", "A"). These generators give them a
varied set without downloading anything: digital silence, coloured noises, tones, mains hum,
band-limited noise (a fan, a road or a cheap microphone), music-like chords and arpeggios, and
mixtures of these. Each maker returns a float64 array at 16 kHz of RMS 1, unclipped; `at_level`
then scales it to a loudness in dB relative to full scale (RMS) and clips once. Every sound is drawn
from a numpy Generator so that one seed always gives the same sounds.

Speech. espeak-ng is the one speech synthesiser that is small, packaged everywhere and scriptable, so
a real ASR clip with an exact reference needs no download (`synthesize`). Voices are checked against
what espeak-ng has installed (`check_voices`): espeak-ng itself silently speaks an unknown voice
with another one. What stays machine-dependent is espeak-ng's own version (`espeak_version`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from rlhf_asr.data.audio import audio_duration
from rlhf_asr.errors import UserInputError

SAMPLING_RATE = 16000
# Spectral slope of the noise power: white 0, pink 1/f, brown 1/f^2, blue f.
NOISE_COLOURS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0}
_SEMITONE = 2 ** (1 / 12)


def _frames(seconds: float) -> int:
    return max(1, round(seconds * SAMPLING_RATE))


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))


def unit_rms(signal: np.ndarray) -> np.ndarray:
    """`signal` scaled to an RMS of 1 (digital silence stays silent), float64 and NOT clipped: peaks
    of unit-RMS noise reach 4 and more, and clipping them here would add broadband distortion (a
    clipped sine is a square wave; clipped brown noise is no longer brown). `at_level` clips once,
    at the final, quieter level."""
    rms = _rms(signal)
    return signal.astype(np.float64) if rms == 0.0 else signal / rms


def at_level(signal: np.ndarray, level_db: float) -> np.ndarray:
    """`signal` scaled to an RMS of `level_db` dBFS (digital silence stays silent), clipped to [-1, 1]."""
    rms = _rms(signal)
    if rms == 0.0:
        return signal.astype(np.float32)
    scaled = signal * (10 ** (level_db / 20) / rms)
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(_frames(seconds), dtype=np.float32)


def noise(seconds: float, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power spectrum follows f^slope (see NOISE_COLOURS), unit RMS."""
    frames = _frames(seconds)
    spectrum = np.fft.rfft(rng.standard_normal(frames))  # [frames // 2 + 1]
    frequencies = np.fft.rfftfreq(frames, 1 / SAMPLING_RATE)
    frequencies[0] = frequencies[1] if frames > 1 else 1.0  # no infinite gain at DC
    spectrum *= frequencies ** (NOISE_COLOURS[colour] / 2)  # amplitude slope is half the power slope
    spectrum[0] = 0.0
    signal = np.fft.irfft(spectrum, frames)
    return unit_rms(signal)


def butterworth_gain(
    frequencies: np.ndarray, low: float | None = None, high: float | None = None, order: int = 4
) -> np.ndarray:
    """Squared magnitude response of an (analog) Butterworth high-pass at `low` and/or low-pass at
    `high` (Hz): the gain of that filter run forwards and backwards (zero phase). Shapes: [F] -> [F]."""
    gain = np.ones_like(frequencies, dtype=np.float64)
    if high is not None:
        gain /= 1 + (frequencies / high) ** (2 * order)
    if low is not None:
        gain /= 1 + (low / np.maximum(frequencies, 1e-3)) ** (2 * order)
    return gain


def band_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """White noise through a random low-, high- or band-pass (4th-order Butterworth, zero phase: 48 dB
    per octave beyond a cut-off), unit RMS.

    Real background noise is rarely a clean power law: rooms, fans, roads and microphones cut or
    boost bands. Cut-offs are log-uniform over 100 Hz-4 kHz; a band spans 1-4 octaves.
    """
    frames = _frames(seconds)
    spectrum = np.fft.rfft(rng.standard_normal(frames))  # [frames // 2 + 1]
    cutoff = float(np.exp(rng.uniform(np.log(100), np.log(4000))))
    upper = cutoff * 2 ** rng.uniform(1, 4)
    low, high = ((None, cutoff), (cutoff, None), (cutoff, upper))[int(rng.integers(3))]  # low-, high-, band-pass
    gain = butterworth_gain(np.fft.rfftfreq(frames, 1 / SAMPLING_RATE), low, high)
    return unit_rms(np.fft.irfft(spectrum * gain, frames))


def tone(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A steady sine between 100 Hz and 4 kHz, with a slight vibrato half of the time."""
    t = np.arange(_frames(seconds)) / SAMPLING_RATE
    frequency = float(np.exp(rng.uniform(np.log(100), np.log(4000))))
    vibrato = rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(3, 7) * t) if rng.random() < 0.5 else 0.0
    return unit_rms(np.sin(2 * np.pi * frequency * t * (1 + vibrato)))


def hum(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and its harmonics, odd ones stronger, over faint white noise."""
    t = np.arange(_frames(seconds)) / SAMPLING_RATE
    base = float(rng.choice([50.0, 60.0]))
    signal = np.zeros_like(t)
    for harmonic in range(1, 9):
        weight = (1.0 if harmonic % 2 else 0.4) / harmonic
        signal += weight * np.sin(2 * np.pi * base * harmonic * t + rng.uniform(0, 2 * np.pi))
    signal = unit_rms(signal) + 0.01 * rng.standard_normal(t.size)
    return unit_rms(signal)


def _note(frequency: float, frames: int, rng: np.random.Generator, decay: float) -> np.ndarray:
    """A plucked or struck note: a few harmonics under an attack-and-decay envelope."""
    t = np.arange(frames) / SAMPLING_RATE
    partials = sum(np.sin(2 * np.pi * frequency * k * t + rng.uniform(0, 2 * np.pi)) / k**1.5 for k in range(1, 6))
    attack = np.minimum(1.0, t / 0.01)  # 10 ms
    return partials * attack * np.exp(-t / decay)


def _scale_root(rng: np.random.Generator) -> float:
    return 110.0 * _SEMITONE ** int(rng.integers(0, 24))  # A2 .. G#4


def chords(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A progression of major or minor triads (with octave), one every 0.5-2 s."""
    frames = _frames(seconds)
    signal = np.zeros(frames)
    step = _frames(rng.uniform(0.5, 2.0))
    for start in range(0, frames, step):
        root, third = _scale_root(rng), 4 if rng.random() < 0.5 else 3
        length = min(step * 2, frames - start)  # notes ring on into the next chord
        for semitones in (0, third, 7, 12):
            signal[start : start + length] += _note(root * _SEMITONE**semitones, length, rng, decay=0.8)
    return unit_rms(signal)


def arpeggio(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Notes of a chord one after another, 4-10 a second, each decaying."""
    frames = _frames(seconds)
    signal = np.zeros(frames)
    step = _frames(1 / rng.uniform(4, 10))
    root = _scale_root(rng) * 2
    pattern = (0, 4 if rng.random() < 0.5 else 3, 7, 12, 7, 4)
    for index, start in enumerate(range(0, frames, step)):
        length = min(step * 3, frames - start)
        signal[start : start + length] += _note(root * _SEMITONE ** pattern[index % len(pattern)], length, rng, 0.25)
    return unit_rms(signal)


# ---- speech (espeak-ng) ----

INSTALL_HINT = "espeak-ng is not installed: apt-get install espeak-ng"


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng") or shutil.which("espeak")


def espeak_available() -> bool:
    return espeak_binary() is not None


def espeak_version() -> str | None:
    """espeak-ng's version line (e.g. "eSpeak NG text-to-speech: 1.51 ..."): the audio depends on it."""
    binary = espeak_binary()
    if binary is None:
        return None
    result = subprocess.run([binary, "--version"], capture_output=True, timeout=30)
    return result.stdout.decode(errors="replace").strip().split("  Data at")[0] or None


def installed_voices() -> tuple[set[str], set[str]]:
    """(voice names, variant names) that espeak-ng has here, from `--voices` and `--voices=variant`.

    A voice name is a language column entry or one of its "other languages" (e.g. "en" for en-gb);
    a variant is the file name after "!v/" (e.g. "m3").
    """
    binary = espeak_binary()
    if binary is None:
        raise UserInputError(INSTALL_HINT)

    def listing(flag: str) -> list[str]:
        result = subprocess.run([binary, flag], capture_output=True, timeout=30)
        return result.stdout.decode(errors="replace").splitlines()[1:]

    names: set[str] = set()
    for line in listing("--voices"):
        fields = line.split()
        if len(fields) >= 2:
            names.add(fields[1])
            names.update(re.findall(r"\((\S+) \d+\)", line))
    variants = {match for line in listing("--voices=variant") for match in re.findall(r"!v/(\S+)", line)}
    return names, variants


def check_voices(voices: list[str]) -> None:
    """UserInputError naming the first voice ("name" or "name+variant") espeak-ng does not have."""
    names, variants = installed_voices()
    for voice in voices:
        name, _, variant = voice.partition("+")
        if name not in names or (variant and variant not in variants):
            missing = f"variant {variant!r}" if name in names else f"voice {name!r}"
            raise UserInputError(
                f"espeak-ng voice {voice!r}: this espeak-ng has no {missing} (see espeak-ng --voices"
                f"{'=variant' if name in names else ''}); it would silently speak another voice"
            )


def synthesize(text: str, path: str | Path, voice: str = "en-us", speed: int = 160) -> float:
    """Speak `text` into the wav file `path` (espeak-ng's 22.05 kHz mono); returns its duration in s.

    The text goes through stdin, so a sentence starting with "-" is never read as an option.
    """
    binary = espeak_binary()
    if binary is None:
        raise UserInputError(INSTALL_HINT)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [binary, "-v", voice, "-s", str(int(speed)), "-w", str(path), "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
    )
    if result.returncode != 0 or not path.is_file():
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {message or 'no output file'}")
    return audio_duration(path)
