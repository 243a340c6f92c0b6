"""Waveform augmentation from a small config, built on the maintained `audiomentations` library.

Two config forms are accepted, as a JSON/YAML file or an already parsed object:

* dict form, exact values: {"noise": {"type": "gaussian", "std": 0.01}, "speed": {"factor": 0.9},
  "pitch": {"steps": 2}}. Each entry applies with "prob" (default 1.0: the config states exact
  values, so it is taken as meant to apply every time).
* list form, as in the popular Whisper-Finetune repositories: [{"type": "speed", "params":
  {"min_speed_rate": 0.9, "max_speed_rate": 1.1, "num_rates": 3}, "prob": 0.5}, ...]; "prob"
  defaults to 1.0 here too.

Types and their params (range form | exact shorthand):
  noise     min_snr_dB, max_snr_dB [, noise_dir] | snr_dB | std   -> AddBackgroundNoise (noise_dir),
            AddGaussianSNR, or AddGaussianNoise (std); optional "type": "gaussian" / "background"
  speed     min_speed_rate, max_speed_rate [, num_rates] | factor -> TimeStretch that changes the
            duration, as speed perturbation does (rates picked from num_rates evenly spaced values)
  pitch     min_semitones, max_semitones | steps                   -> PitchShift
  shift     min_shift_ms, max_shift_ms | ms                        -> Shift (zero-filled, no rollover)
  volume    min_gain_dBFS, max_gain_dBFS | gain_dB                 -> Gain
  resample  new_sample_rates (list) | rate                         -> down-and-up resampling (soxr), which
            band-limits the audio the way a telephone or cheap microphone does; the rate is unchanged
A relative noise_dir is looked up next to the config file, then in the working directory.

Output is float32 at the input's sampling rate, clipped to [-1, 1]. A clip that augmentation would
push past Whisper's 30 s window is returned unaugmented (with a warning). With `seed`, the augmenter
draws from its own random state (the global one is left alone), so runs repeat exactly; leave
it None in multi-worker data loading, where PyTorch seeds each worker differently.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import soxr
import yaml
from audiomentations import (
    AddBackgroundNoise,
    AddGaussianNoise,
    AddGaussianSNR,
    Compose,
    Gain,
    Lambda,
    OneOf,
    PitchShift,
    Shift,
    TimeStretch,
)
from audiomentations.core.utils import find_audio_files_in_paths

from rlhf_asr.data.audio import WHISPER_MAX_SECONDS, AudioError, audio_duration
from rlhf_asr.errors import UserInputError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Params:
    """One entry's params; every problem becomes a UserInputError naming the config and entry."""

    def __init__(self, params: dict, where: str, base_dir: Path | None):
        self.left, self.where, self.base_dir = dict(params), where, base_dir

    def fail(self, reason: str) -> NoReturn:
        raise UserInputError(f"{self.where}: {reason}")

    def number(self, key: str) -> float | None:
        """The number under `key`, None when absent."""
        value = self.left.pop(key, None)
        if value is not None and not _is_number(value):
            self.fail(f"{key} should be a number, got {value!r}")
        return value

    def span(self, low_key: str, high_key: str, exact_key: str) -> tuple[float, float]:
        """(low, high) from a range pair, or (x, x) from the exact shorthand."""
        exact = self.number(exact_key)
        if exact is not None:
            return exact, exact
        low, high = self.number(low_key), self.number(high_key)
        if low is None or high is None:
            self.fail(f"needs params {low_key} and {high_key} (or {exact_key})")
        if low > high:
            self.fail(f"{low_key} {low:g} is greater than {high_key} {high:g}")
        return low, high

    def finish(self) -> None:
        if self.left:
            self.fail(f"unknown params {', '.join(sorted(map(str, self.left)))}")


def _noise(params: _Params, prob: float) -> Any:
    kind, folder = params.left.pop("type", None), params.left.pop("noise_dir", None)
    if kind not in (None, "gaussian", "background"):
        params.fail(f"noise type should be 'gaussian' or 'background', got {kind!r}")
    if (kind == "background" and folder is None) or (kind == "gaussian" and folder is not None):
        params.fail("noise type 'background' needs noise_dir; 'gaussian' takes none")
    std = params.number("std")
    if std is not None:
        if std <= 0 or folder is not None:
            params.fail(f"std should be > 0 and comes without noise_dir, got std={std!r}")
        return AddGaussianNoise(min_amplitude=std, max_amplitude=std, p=prob)
    low, high = params.span("min_snr_dB", "max_snr_dB", "snr_dB")
    if folder is None:
        return AddGaussianSNR(min_snr_db=low, max_snr_db=high, p=prob)
    return AddBackgroundNoise(sounds_path=_noise_dir(params, folder), min_snr_db=low, max_snr_db=high, p=prob)


def _noise_dir(params: _Params, folder: Any) -> str:
    if not isinstance(folder, str) or not folder:
        params.fail(f"noise_dir should be a folder path, got {folder!r}")
    raw = Path(folder).expanduser()
    bases = [params.base_dir.absolute()] if params.base_dir else []
    tried = [raw] if raw.is_absolute() else list(dict.fromkeys(base / raw for base in [*bases, Path.cwd()]))
    found = next((path for path in tried if path.is_dir()), None)
    if found is None:
        params.fail(f"noise_dir {folder!r} not found (looked for {', '.join(map(str, tried))})")
    files = find_audio_files_in_paths(str(found))
    if not files:
        params.fail(f"noise_dir {found} has no audio files (.wav, .flac, .mp3, .ogg, ...)")
    for file in files:  # headers only: a bad noise file must fail here, not mid-training
        try:
            audio_duration(file)
        except AudioError as error:
            params.fail(f"noise_dir: {error}")
    return str(found)


def _speed(params: _Params, prob: float) -> Any:
    factor = params.number("factor")
    if factor is not None:
        return TimeStretch(min_rate=factor, max_rate=factor, leave_length_unchanged=False, p=prob)
    low, high = params.span("min_speed_rate", "max_speed_rate", "factor")
    count = params.left.pop("num_rates", None)
    if count is None:
        return TimeStretch(min_rate=low, max_rate=high, leave_length_unchanged=False, p=prob)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        params.fail(f"num_rates should be a whole number >= 1, got {count!r}")
    rates = np.linspace(low, high, count)
    return OneOf([TimeStretch(min_rate=r, max_rate=r, leave_length_unchanged=False, p=1.0) for r in rates], p=prob)


def _pitch(params: _Params, prob: float) -> Any:
    low, high = params.span("min_semitones", "max_semitones", "steps")
    return PitchShift(min_semitones=low, max_semitones=high, p=prob)


def _shift(params: _Params, prob: float) -> Any:
    low, high = params.span("min_shift_ms", "max_shift_ms", "ms")
    return Shift(min_shift=low / 1000, max_shift=high / 1000, shift_unit="seconds", rollover=False, p=prob)


def _volume(params: _Params, prob: float) -> Any:
    low, high = params.span("min_gain_dBFS", "max_gain_dBFS", "gain_dB")
    return Gain(min_gain_db=low, max_gain_db=high, p=prob)


def _band_limit(samples: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """Resample to `rate` and back: content above rate/2 is lost, length and rate are kept."""
    if rate == sample_rate:
        return samples
    restored = soxr.resample(soxr.resample(samples, sample_rate, rate), rate, sample_rate)
    return np.pad(restored, (0, max(0, len(samples) - len(restored))))[: len(samples)]


def _resample(params: _Params, prob: float) -> Any:
    rates = params.left.pop("new_sample_rates", None)
    exact = params.left.pop("rate", None)
    if exact is not None and rates is not None:
        params.fail("give new_sample_rates or rate, not both")
    rates = rates if exact is None else [exact]
    if not isinstance(rates, list) or not rates or not all(_is_number(r) and r == int(r) >= 1000 for r in rates):
        params.fail(f"needs new_sample_rates, a list of whole rates >= 1000 Hz (or rate), got {rates!r}")
    return OneOf([Lambda(transform=_band_limit, p=1.0, rate=int(rate)) for rate in rates], p=prob)


_BUILDERS: dict[str, Callable[[_Params, float], Any]] = {
    "noise": _noise,
    "speed": _speed,
    "pitch": _pitch,
    "shift": _shift,
    "volume": _volume,
    "resample": _resample,
}


class Augmenter:
    """(samples, sampling_rate) -> augmented float32 samples in [-1, 1]; repr lists the transforms."""

    def __init__(self, compose: Compose, seed: int | None = None):
        self.compose = compose
        self._states = None
        if seed is not None:
            self._states = random.Random(seed).getstate(), np.random.RandomState(seed).get_state()

    def __repr__(self) -> str:
        return f"Augmenter({self.compose!r})"

    def __call__(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if self._states is None:
            out = self.compose(samples=samples, sample_rate=sampling_rate)
        else:  # swap our own random state in, and the caller's back out
            saved = random.getstate(), np.random.get_state()
            random.setstate(self._states[0])
            np.random.set_state(self._states[1])
            try:
                out = self.compose(samples=samples, sample_rate=sampling_rate)
            finally:
                self._states = random.getstate(), np.random.get_state()
                random.setstate(saved[0])
                np.random.set_state(saved[1])
        if len(out) > WHISPER_MAX_SECONDS * sampling_rate >= len(samples):
            # Slowed down past Whisper's window, the clip would be cut while its transcript is not.
            warnings.warn("augmentation skipped for a clip it would push past Whisper's 30 s window", stacklevel=2)
            out = samples
        return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


def _load(path: Path) -> Any:
    if not path.is_file():
        raise UserInputError(f"augmentation config {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text) if path.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise UserInputError(f"cannot read augmentation config {path}: {error}") from None


def _entries(config: Any, name: str) -> list[tuple[str, Any]]:
    """(type, params with "prob") per entry, from either form."""
    if isinstance(config, dict):
        entries = list(config.items())
    elif isinstance(config, list):
        entries = []
        for index, entry in enumerate(config):
            if not isinstance(entry, dict) or "type" not in entry or set(entry) - {"type", "params", "prob"}:
                raise UserInputError(f'{name}: entry {index} should be {{"type", "params", "prob"}}, got {entry!r}')
            params = entry.get("params", {})
            if isinstance(params, dict):
                params = {**params, "prob": entry.get("prob", 1.0)}
            entries.append((entry["type"], params))
    else:
        raise UserInputError(f"{name}: should be a list of augmentations or an object, got {type(config).__name__}")
    if not entries:
        raise UserInputError(f"{name}: no augmentations listed (leave the option out to train without)")
    return entries


def build_augmenter(config: str | Path | dict | list | None, *, seed: int | None = None) -> Augmenter | None:
    """An augmenter from a config file path or parsed config (forms: module docstring); None for None."""
    if config is None:
        return None
    base_dir = None
    name = "augmentation config"
    if isinstance(config, (str, Path)):
        base_dir, name = Path(config).expanduser().parent, f"augmentation config {config}"
        config = _load(Path(config).expanduser())
    transforms = []
    for index, (kind, params) in enumerate(_entries(config, name)):
        where = f"{name}: entry {index} ({kind!r})"
        if not isinstance(kind, str) or kind not in _BUILDERS:
            raise UserInputError(f"{where}: unknown type; known types: {', '.join(_BUILDERS)}")
        if not isinstance(params, dict):
            raise UserInputError(f"{where}: params should be an object, got {params!r}")
        reader = _Params(params, where, base_dir)
        prob = reader.number("prob")
        prob = 1.0 if prob is None else prob
        if not 0 <= prob <= 1:
            reader.fail(f"prob should be between 0 and 1, got {prob!r}")
        try:
            transforms.append(_BUILDERS[kind](reader, prob))
        except (ValueError, AssertionError) as error:  # audiomentations' own parameter checks
            reader.fail(f"bad params: {error or type(error).__name__}")
        reader.finish()
    return Augmenter(Compose(transforms, p=1.0, shuffle=False), seed=seed)
