"""Non-speech sources: generated clips (deterministic, every kind, asked durations and levels),
the user's files cut into 30 s windows, unreadable files counted, and speech padding."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile

from rlhf_asr.data import synth_audio
from rlhf_asr.data.nonspeech import (
    NONSPEECH_KINDS,
    generate_nonspeech,
    make_nonspeech,
    nonspeech_plan,
    nonspeech_windows,
    pad_speech,
)


def _rms_db(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def test_generated_clips_hold_every_kind_at_the_asked_durations_and_levels(tmp_path):
    count = len(NONSPEECH_KINDS) + 3
    clips = generate_nonspeech(count, seed=5, folder=tmp_path, durations=(0.5, 1.5), levels=(-40.0, -20.0))
    assert len(clips) == count and {clip.kind for clip in clips} == set(NONSPEECH_KINDS)
    assert {"silence", "white_noise", "pink_noise", "brown_noise", "blue_noise", "tone", "hum"} <= set(NONSPEECH_KINDS)
    assert {clip.duration for clip in clips} == {0.5, 1.5}
    for clip in clips:
        samples, rate = soundfile.read(clip.path, dtype="float32")
        assert rate == 16000 and samples.ndim == 1 and samples.size == round(clip.duration * 16000)
        if clip.kind == "silence":
            assert not samples.any()  # digital silence
        else:
            assert min(abs(_rms_db(samples) - level) for level in (-40.0, -20.0)) < 0.5


def test_generation_is_deterministic_from_the_seed(tmp_path):
    first = [soundfile.read(c.path)[0] for c in generate_nonspeech(12, 3, tmp_path / "a", durations=(0.5,))]
    again = [soundfile.read(c.path)[0] for c in generate_nonspeech(12, 3, tmp_path / "b", durations=(0.5,))]
    other = [soundfile.read(c.path)[0] for c in generate_nonspeech(12, 4, tmp_path / "c", durations=(0.5,))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, c) for a, c in zip(first[1:], other[1:]))  # clip 0 is silence either way


def test_default_durations_span_one_to_thirty_seconds():
    durations = {nonspeech_plan(i, 0)[1] for i in range(60)}
    assert min(durations) == 1.0 and max(durations) == 30.0 and len(durations) >= 5


@pytest.mark.parametrize(("colour", "low_heavier"), [("pink", True), ("brown", True), ("blue", False)])
def test_noise_colours_tilt_the_spectrum(colour, low_heavier):
    rng = np.random.default_rng(0)
    spectrum = np.abs(np.fft.rfft(synth_audio.noise(2.0, colour, rng))) ** 2
    low, high = spectrum[100:1000].mean(), spectrum[10000:15000].mean()  # ~50-500 Hz vs 5-7.5 kHz
    white = np.abs(np.fft.rfft(synth_audio.noise(2.0, "white", rng))) ** 2
    assert (low > 10 * high) if low_heavier else (high > 10 * low)
    assert 0.5 < white[100:1000].mean() / white[10000:15000].mean() < 2


def test_a_long_file_is_cut_into_windows_of_at_most_thirty_seconds(tmp_path):
    source = tmp_path / "mine"
    (source / "music").mkdir(parents=True)
    rng = np.random.default_rng(0)
    soundfile.write(source / "music" / "long.flac", 0.1 * rng.standard_normal((70 * 8000, 2)), 8000)  # 70 s stereo
    soundfile.write(source / "short.wav", np.zeros(16000, dtype=np.float32), 16000)  # 1 s
    clips, unreadable = nonspeech_windows(source, tmp_path / "out")
    assert unreadable == 0
    long = [c for c in clips if "long.flac" in c.where]
    assert len(long) == 3 and all(c.duration <= 30.0 for c in long)
    assert sum(c.duration for c in long) == pytest.approx(70.0, abs=0.01)
    assert [c.where for c in long] == [f"nonspeech_dir:music/long.flac#{i}" for i in range(3)]
    assert soundfile.info(long[0].path).samplerate == 16000 and soundfile.info(long[0].path).channels == 1
    assert len([c for c in clips if "short.wav" in c.where]) == 1


def test_unreadable_files_are_named_and_counted(tmp_path, caplog):
    source = tmp_path / "mine"
    source.mkdir()
    soundfile.write(source / "good.wav", np.zeros(8000, dtype=np.float32), 16000)
    (source / "notes.txt").write_text("not audio")
    (source / "broken.wav").write_bytes(b"RIFF\x00\x00")
    clips, unreadable = nonspeech_windows(source, tmp_path / "out")
    assert len(clips) == 1 and unreadable == 2
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "notes.txt" in warned and "broken.wav" in warned


def test_padding_keeps_the_speech_and_stays_within_thirty_seconds(tmp_path):
    speech = np.full(16000 * 2, 0.5, dtype=np.float32)  # 2 s of a constant: easy to find again
    filler = generate_nonspeech(1, 0, tmp_path, durations=(1.0,))[0].path
    for seed in range(6):
        padded, before, after = pad_speech(speech, 4.0, np.random.default_rng(seed), [filler])
        assert before + after == pytest.approx(4.0) and padded.size == 6 * 16000
        start = round(before * 16000)
        assert np.array_equal(padded[start : start + speech.size], speech)
    long = np.zeros(16000 * 28, dtype=np.float32)
    padded, before, after = pad_speech(long, 5.0, np.random.default_rng(0))
    assert padded.size == 30 * 16000 and before + after == pytest.approx(2.0)


@pytest.mark.parametrize("btype", ["lowpass", "highpass"])
def test_band_noise_filter_is_scipys_butterworth_run_both_ways(btype):
    """The band-limited noise's gain is |H|^2 of scipy's 4th-order Butterworth (analog prototype: the
    response is applied per frequency, so no bilinear warping), i.e. the filter run forwards and backwards."""
    signal = pytest.importorskip("scipy.signal")
    frequencies = np.linspace(20, 7900, 400)
    b, a = signal.butter(4, 2 * np.pi * 700.0, btype=btype, analog=True)
    _, response = signal.freqs(b, a, worN=2 * np.pi * frequencies)
    edges = {"lowpass": {"high": 700.0}, "highpass": {"low": 700.0}}[btype]
    np.testing.assert_allclose(synth_audio.butterworth_gain(frequencies, **edges), np.abs(response) ** 2, atol=1e-6)


def test_band_noise_is_band_limited():
    """Every draw leaves some octave 20 dB or more below the loudest one (white noise: within ~3 dB)."""
    for seed in range(6):
        samples = synth_audio.band_noise(2.0, np.random.default_rng(seed))
        power = np.abs(np.fft.rfft(samples)) ** 2
        frequencies = np.fft.rfftfreq(samples.size, 1 / 16000)
        octaves = [
            power[(frequencies >= f) & (frequencies < 2 * f)].mean() for f in (62.5, 125, 250, 500, 1000, 2000, 4000)
        ]
        assert 10 * np.log10(max(octaves) / min(octaves)) > 40


def _clip_of(kind: str, seed: int = 0) -> np.ndarray:
    """The first generated clip of `kind` (5 s, -20 dBFS) for `seed`."""
    index = list(NONSPEECH_KINDS).index(kind)
    return make_nonspeech(index, seed, durations=(5.0,), levels=(-20.0,))[3]


def test_generated_sounds_are_not_clipped():
    """Peak over RMS of the unclipped shapes: a sine's is sqrt 2, noise's 3 or more. Clipping at RMS 1
    (as the generator once did before levelling) flattens them to ~1.1-1.3 and adds distortion."""
    for kind in NONSPEECH_KINDS:
        if kind == "silence":
            continue
        for seed in range(3):
            samples = _clip_of(kind, seed).astype(np.float64)
            crest = np.abs(samples).max() / np.sqrt(np.mean(samples**2))
            assert crest > (1.4 if kind == "tone" else 1.5), (kind, seed, crest)


@pytest.mark.parametrize("colour", list(synth_audio.NOISE_COLOURS))
def test_noise_colours_keep_their_slope(colour):
    """Power goes as f^slope: 3 dB per octave per unit of slope (brown -6, pink -3, white 0, blue +3),
    fitted over the octaves 31 Hz-8 kHz. Clipping distortion used to flatten blue noise to ~+1.6."""
    samples = _clip_of(f"{colour}_noise").astype(np.float64)
    power = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(samples.size, 1 / 16000)
    starts = 31.25 * 2 ** np.arange(8)
    levels = [10 * np.log10(power[(frequencies >= f) & (frequencies < 2 * f)].mean()) for f in starts]
    slope = np.polyfit(np.arange(len(starts)), levels, 1)[0]
    assert slope == pytest.approx(10 * np.log10(2) * synth_audio.NOISE_COLOURS[colour], abs=0.4)


def _no_writing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("wrote a clip before checking the disk")

    monkeypatch.setattr(soundfile, "write", refuse)


def test_generating_more_than_the_disk_holds_is_refused_before_writing(tmp_path, monkeypatch):
    """100000 clips once wrote WAV after WAV, silently, on their way to ~36 GB."""
    import shutil

    from rlhf_asr.data import nonspeech
    from rlhf_asr.errors import UserInputError

    _no_writing(monkeypatch)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**9, 10**9))
    with pytest.raises(UserInputError, match=r"^--generate_nonspeech 100000: .*36\.3 GB.*1\.0 GB free"):
        generate_nonspeech(100000, 0, tmp_path / "out")
    assert nonspeech.nonspeech_bytes(100000) == pytest.approx(100000 * 68 / 6 * 16000 * 2, rel=1e-3)  # 11.3 s mean
    from rlhf_asr.commands.make_pairs import parse_args

    argv = ["--model", "m", "--data", "d.jsonl", "--output", str(tmp_path / "p.jsonl"), "--generate_nonspeech"]
    with pytest.raises(UserInputError, match="--generate_nonspeech 100000: .*about 2[0-9]{3} fit"):
        parse_args([*argv, "100000"])  # at parse time: before any data or model is read
    assert parse_args([*argv, "40"]).generate_nonspeech == 40


def test_generating_shows_a_progress_bar_and_the_size_up_front(tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="rlhf_asr")
    generate_nonspeech(3, 0, tmp_path, durations=(0.1,))
    assert "3/3" in capsys.readouterr().err
    assert any("3 clips" in r.getMessage() and "MB" in r.getMessage() for r in caplog.records)


def _user_dir(tmp_path):
    source = tmp_path / "mine"
    source.mkdir()
    soundfile.write(source / "good.wav", np.zeros(8000, dtype=np.float32), 16000)
    return source


def test_nonspeech_dir_says_why_each_file_is_skipped(tmp_path, caplog, monkeypatch):
    """A 0-byte file read as "Format not recognised.", an unreadable one as "System error." (as
    root nothing is unreadable: os.open is made to refuse it), a symlink loop was not named at all."""
    import os

    source = _user_dir(tmp_path)
    (source / "empty.wav").write_bytes(b"")
    soundfile.write(source / "locked.wav", np.zeros(8000, dtype=np.float32), 16000)
    (source / "loop.wav").symlink_to(source / "loop.wav")
    real_open = os.open

    def locked(path, *args, **kwargs):
        if str(path).endswith("locked.wav"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", locked)
    clips, unreadable = nonspeech_windows(source, tmp_path / "out")
    warned = {r.getMessage().split(": ", 2)[1].rsplit("/", 1)[-1]: r.getMessage() for r in caplog.records}
    assert len(clips) == 1 and unreadable == 3, warned
    assert "empty file (0 bytes)" in warned["empty.wav"]
    assert "permission denied" in warned["locked.wav"]
    assert "symlink loop" in warned["loop.wav"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file")
def test_a_chmod_000_file_is_permission_denied(tmp_path, caplog):
    source = _user_dir(tmp_path)
    soundfile.write(source / "locked.wav", np.zeros(8000, dtype=np.float32), 16000)
    (source / "locked.wav").chmod(0)
    nonspeech_windows(source, tmp_path / "out")
    assert "permission denied" in " ".join(r.getMessage() for r in caplog.records)


def test_a_nonspeech_dir_without_one_usable_window_stops(tmp_path):
    from rlhf_asr.errors import UserInputError

    source = tmp_path / "mine"
    source.mkdir()
    (source / "empty.wav").write_bytes(b"")
    with pytest.raises(UserInputError, match=r"--nonspeech_dir .*mine: none of its 1 file\(s\) could be used"):
        nonspeech_windows(source, tmp_path / "out")
    (source / "empty.wav").unlink()
    with pytest.raises(UserInputError, match=r"--nonspeech_dir .*mine: no files in it"):
        nonspeech_windows(source, tmp_path / "out")


def test_make_pairs_with_no_usable_nonspeech_file_exits_2_in_one_line(tmp_path, capsys):
    """It used to mine the speech rows alone and exit 0, as if the user's non-speech had been used."""
    import json

    from rlhf_asr.commands.cli import main as cli_main
    from whisper_fixtures import make_tiny_whisper_dir, write_tone

    write_tone(tmp_path / "a.wav")
    (tmp_path / "asr.jsonl").write_text(json.dumps({"audio": {"path": "a.wav"}, "duration": 1.0, "sentence": "hi"}))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "empty.wav").write_bytes(b"")
    argv = ["make-pairs", "--model", str(make_tiny_whisper_dir(tmp_path)), "--data", str(tmp_path / "asr.jsonl")]
    argv += ["--output", str(tmp_path / "p.jsonl"), "--nonspeech_dir", str(tmp_path / "mine"), "--device", "cpu"]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("rlhf-asr make-pairs: error: --nonspeech_dir ")
