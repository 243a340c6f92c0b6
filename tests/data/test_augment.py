"""Augmentation configs: both forms build real audiomentations transforms; bad configs name file and entry."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from rlhf_asr.data.augment import build_augmenter
from rlhf_asr.errors import UserInputError

RATE = 16000


def tone(freq: float = 440.0, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def band_energy(samples: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


@pytest.fixture
def noise_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "noise"
    folder.mkdir()
    sf.write(folder / "hum.wav", tone(100.0, 0.5, 0.2), RATE)
    return folder


def test_none_means_no_augmentation():
    assert build_augmenter(None) is None


def test_dict_form_changes_signal_and_speed_changes_length():
    config = {"noise": {"type": "gaussian", "std": 0.01}, "speed": {"factor": 0.9}, "pitch": {"steps": 2}}
    augment = build_augmenter(config)
    out = augment(tone(), RATE)
    assert out.dtype == np.float32
    assert len(out) == pytest.approx(RATE / 0.9, abs=2)
    peak = np.fft.rfftfreq(len(out), 1 / RATE)[np.argmax(np.abs(np.fft.rfft(out)))]
    assert peak == pytest.approx(440 * 2 ** (2 / 12), abs=5)  # two semitones up, kept by the tempo change


def test_dict_form_noise_level():
    out = build_augmenter({"noise": {"std": 0.01}})(np.zeros(RATE, np.float32), RATE)
    assert np.std(out) == pytest.approx(0.01, rel=0.05)


LIST_FORM = {
    "noise": {"min_snr_dB": 10, "max_snr_dB": 10},
    "speed": {"min_speed_rate": 0.9, "max_speed_rate": 1.1, "num_rates": 3},
    "shift": {"min_shift_ms": 5, "max_shift_ms": 5},
    "volume": {"min_gain_dBFS": 6, "max_gain_dBFS": 6},
    "resample": {"new_sample_rates": [8000]},
    "pitch": {"min_semitones": -2, "max_semitones": -2},
}


@pytest.mark.parametrize("kind", LIST_FORM)
def test_each_list_form_type_builds_and_changes_the_signal(kind):
    source = tone(440) + tone(6000)  # 6 kHz: above what 8 kHz sampling keeps
    out = build_augmenter([{"type": kind, "params": LIST_FORM[kind], "prob": 1.0}], seed=0)(source, RATE)
    assert out.dtype == np.float32 and np.abs(out).max() <= 1.0
    if kind == "speed":
        assert min(abs(len(out) - RATE / rate) for rate in (0.9, 1.0, 1.1)) <= 2
        return
    assert len(out) == len(source)
    if kind == "noise":  # 10 dB SNR: noise power a tenth of the signal's
        assert np.mean((out - source) ** 2) == pytest.approx(np.mean(source**2) / 10, rel=0.1)
    elif kind == "shift":  # 5 ms = 80 samples of silence in front, the rest delayed
        assert not out[:80].any() and np.allclose(out[200:], source[120:-80], atol=1e-6)
    elif kind == "volume":
        np.testing.assert_allclose(out, np.clip(source * 10 ** (6 / 20), -1, 1), rtol=1e-5)
    elif kind == "resample":
        assert band_energy(out, 5500, 6500) < 1e-4 * band_energy(source, 5500, 6500)
        assert band_energy(out, 400, 480) == pytest.approx(band_energy(source, 400, 480), rel=0.05)
    elif kind == "pitch":
        assert band_energy(out, 430, 450) < 0.1 * band_energy(source, 430, 450)


def test_speed_rates_are_the_listed_ones():
    augment = build_augmenter([{"type": "speed", "params": LIST_FORM["speed"], "prob": 1.0}], seed=1)
    lengths = {len(augment(tone(), RATE)) for _ in range(30)}
    assert {round(RATE / length, 2) for length in lengths} == {0.9, 1.0, 1.1}


def test_background_noise_from_folder(noise_dir: Path):
    config = [{"type": "noise", "params": {"min_snr_dB": 0, "max_snr_dB": 0, "noise_dir": str(noise_dir)}, "prob": 1.0}]
    source = tone(2000)
    out = build_augmenter(config, seed=0)(source, RATE)
    added = out - source
    assert band_energy(added, 90, 110) > 0.9 * band_energy(added, 0, RATE / 2)  # the hum, nothing else
    assert np.mean(added**2) == pytest.approx(np.mean(source**2), rel=0.05)  # 0 dB SNR


def test_config_files_json_and_yaml_with_relative_noise_dir(tmp_path: Path, noise_dir: Path, monkeypatch):
    config = [{"type": "noise", "params": {"min_snr_dB": 10, "max_snr_dB": 20, "noise_dir": "noise"}, "prob": 1.0}]
    (tmp_path / "aug.json").write_text(json.dumps(config))
    (tmp_path / "aug.yaml").write_text(yaml.safe_dump({"volume": {"gain_dB": -6}}))
    monkeypatch.chdir(noise_dir)  # "noise" is looked up next to the config first
    assert not np.array_equal(build_augmenter(tmp_path / "aug.json")(tone(), RATE), tone())
    quieter = build_augmenter(str(tmp_path / "aug.yaml"))(tone(), RATE)
    np.testing.assert_allclose(quieter, tone() / 10 ** (6 / 20), rtol=1e-5)


def test_prob_zero_leaves_signal_alone_and_output_is_clipped():
    source = tone(amplitude=0.9)
    never = build_augmenter([{"type": "pitch", "params": {"steps": 3}, "prob": 0.0}])
    np.testing.assert_array_equal(never(source, RATE), source)
    loud = build_augmenter({"volume": {"gain_dB": 12}})(source, RATE)
    assert loud.max() == 1.0 and loud.min() == -1.0


def test_no_slow_down_past_whisper_window():
    slow = build_augmenter({"speed": {"factor": 0.9}, "volume": {"gain_dB": -6}})
    rate = 2000  # a low rate keeps 29 s of audio cheap
    assert len(slow(np.full(20 * rate, 0.1, np.float32), rate)) == pytest.approx(20 * rate / 0.9, abs=2)
    near_limit = np.full(29 * rate, 0.1, np.float32)
    with pytest.warns(UserWarning, match="past Whisper's 30 s window"):
        np.testing.assert_array_equal(slow(near_limit, rate), near_limit)


def test_seed_repeats_and_leaves_global_random_state_alone():
    config = {"noise": {"min_snr_dB": 5, "max_snr_dB": 30}, "volume": {"min_gain_dBFS": -6, "max_gain_dBFS": 6}}
    first, second = build_augmenter(config, seed=7), build_augmenter(config, seed=7)
    random.seed(3)
    np.random.seed(3)
    expected = random.random(), np.random.rand()
    random.seed(3)
    np.random.seed(3)
    runs = [(first(tone(), RATE), second(tone(), RATE)) for _ in range(3)]
    assert (random.random(), np.random.rand()) == expected
    assert all(np.array_equal(a, b) for a, b in runs)
    assert not np.array_equal(runs[0][0], runs[1][0])  # still random from call to call


BAD_CONFIGS = [
    ([{"type": "reverb", "params": {}}], "entry 0 ('reverb'): unknown type; known types: noise, speed"),
    (
        [{"type": "volume", "params": {"min_gain_dBFS": 1}}],
        "entry 0 ('volume'): needs params min_gain_dBFS and max_gain_dBFS",
    ),
    (
        [{"type": "volume", "params": {"min_gain_dBFS": 3, "max_gain_dBFS": 1}}],
        "min_gain_dBFS 3 is greater than max_gain_dBFS 1",
    ),
    ([{"type": "pitch", "params": {"steps": "2"}}], "entry 0 ('pitch'): steps should be a number, got '2'"),
    ([{"type": "pitch", "params": {"steps": 2, "speed": 1}}], "entry 0 ('pitch'): unknown params speed"),
    ([{"type": "pitch", "params": {"steps": 40}}], "entry 0 ('pitch'): bad params: max_semitones must be <= 24"),
    (
        [{"type": "shift", "params": {"ms": 5}}, {"type": "speed", "params": {"factor": 0.9, "num_rates": 0}}],
        "entry 1 ('speed'): unknown params num_rates",
    ),
    (
        [{"type": "speed", "params": {"min_speed_rate": 0.9, "max_speed_rate": 1.1, "num_rates": 0}}],
        "num_rates should be a whole number >= 1, got 0",
    ),
    ([{"type": "resample", "params": {"new_sample_rates": []}}], "entry 0 ('resample'): needs new_sample_rates"),
    ([{"type": "volume", "params": {"gain_dB": 1}, "prob": 1.5}], "entry 0 ('volume'): prob should be between 0 and 1"),
    ([{"type": "volume", "params": [1]}], "entry 0 ('volume'): params should be an object"),
    ([{"kind": "volume"}], "entry 0 should be"),
    (
        [{"type": "noise", "params": {"snr_dB": 5, "noise_dir": "missing"}}],
        "entry 0 ('noise'): noise_dir 'missing' not found (looked for {tmp}/missing)",
    ),
    ([{"type": "noise", "params": {"snr_dB": 5, "noise_dir": "empty"}}], "noise_dir {tmp}/empty has no audio files"),
    (
        [{"type": "noise", "params": {"snr_dB": 5, "noise_dir": "junk"}}],
        "noise_dir: audio file {tmp}/junk/bad.wav: cannot read",
    ),
    ({"noise": {"type": "pink", "std": 0.1}}, "entry 0 ('noise'): noise type should be 'gaussian' or 'background'"),
    ({"noise": {"type": "background", "snr_dB": 3}}, "noise type 'background' needs noise_dir"),
    ({"speed": 0.9}, "entry 0 ('speed'): params should be an object"),
    ([{"type": ["speed"]}], "entry 0 (['speed']): unknown type"),
    ([], "no augmentations listed"),
    ("just text", "should be a list of augmentations or an object, got str"),
]


@pytest.mark.parametrize("config, reason", BAD_CONFIGS)
def test_bad_config_file_names_file_and_entry(tmp_path: Path, monkeypatch, config, reason):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "bad.wav").write_bytes(b"not audio" * 10)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "aug.json"
    path.write_text(json.dumps(config))
    with pytest.raises(UserInputError) as caught:
        build_augmenter(path)
    assert str(caught.value).startswith(f"augmentation config {path}: ")
    assert reason.format(tmp=tmp_path) in str(caught.value)


@pytest.mark.parametrize("content, reason", [(None, "not found"), ("{oops", "cannot read augmentation config")])
def test_unreadable_config_file(tmp_path: Path, content, reason):
    path = tmp_path / "aug.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserInputError, match=reason):
        build_augmenter(path)


def test_bad_inline_config_is_named():
    with pytest.raises(UserInputError, match=r"^augmentation config: entry 0 \('echo'\): unknown type"):
        build_augmenter({"echo": {}})
