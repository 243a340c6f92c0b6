"""`transcribe` and `export-ct2` trust fixes (issue 22): output folders checked before decoding,
segments inside the audio, a progress bar for long-form decoding, files that stay files after
`--temperature`/`--timestamps`, no transformers deprecation chatter, and a folder of WAVs named
as not a model folder."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
import soundfile
from test_longform import GREEDY, RATE, noise, timestamp_model

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.errors import UserInputError
from rlhf_asr.inference import longform
from rlhf_asr.inference.longform import LongFormOptions, transcribe_long


def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli_main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_line(rc: int, err: str, *needles: str) -> str:
    """Exit 2, no traceback, only the `rlhf-asr CMD: error:` line (nothing was loaded before it)."""
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err[-2000:]
    for needle in needles:
        assert needle in err, (needle, err)
    return err.strip()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A timestamp-emitting tiny model folder and audio of 10 ms, 3 s and 70 s."""
    folder = tmp_path_factory.mktemp("transcribe-checks")
    model, processor = timestamp_model()
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    paths = {"model": folder / "model", "root": folder}
    for name, seconds in (("tenms", 0.01), ("short", 3.0), ("long", 70.0)):
        paths[name] = folder / f"{name}.wav"
        soundfile.write(paths[name], noise(seconds, 3), RATE)
    return paths


# ---- 1. --output_dir: a file, under a file, or unwritable: refused before decoding ----


def test_output_dir_that_is_a_file_is_refused_before_decoding(files, tmp_path, capsys):
    (tmp_path / "F").write_text("x")
    for given, needle in ((tmp_path / "F", "is a file"), (tmp_path / "F" / "sub", "F is a file")):
        rc, _, err = run(
            capsys, "transcribe", "--model", files["model"], files["short"], "--timestamps", "--output_dir", given
        )
        one_line(rc, err, "--output_dir", str(given), needle)


def test_unwritable_output_dir_is_refused_before_decoding(files, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    # Tests run as root here, for whom every folder is writable: the folder is made to read as locked.
    def access(path, mode, **kwargs):
        return False if str(path) == str(locked) else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    for given in (locked, locked / "new" / "deeper"):
        rc, _, err = run(
            capsys, "transcribe", "--model", files["model"], files["short"], "--timestamps", "--output_dir", given
        )
        one_line(rc, err, "--output_dir", str(given), "not writable")
    assert not (locked / "new").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_really_unwritable_output_dir(files, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    rc, _, err = run(
        capsys, "transcribe", "--model", files["model"], files["short"], "--timestamps", "--output_dir", locked
    )
    one_line(rc, err, "--output_dir", "not writable")


# ---- 2. segments end inside the audio ----


def test_clip_segment_keeps_times_inside_the_audio():
    assert longform.clip_segment(0.0, 1.0, 0.01) == (0.0, 0.01)
    assert longform.clip_segment(19.7, 22.46, 3.0) == (3.0, 3.0)  # a segment the model placed after the end
    assert longform.clip_segment(1.2344, 2.0, 10.0) == (1.234, 2.0)  # milliseconds
    assert longform.clip_segment(0.0, 0.0111, 0.01055) == (0.0, 0.01)  # rounding never goes past the end


def test_no_segment_ends_after_the_audio():
    model, processor = timestamp_model()
    audios = [noise(seconds, 3) for seconds in (0.01, 3.0, 31.5)]
    results = transcribe_long(model, processor, audios, options=GREEDY, batch_size=1)
    for audio, result in zip(audios, results):
        assert result.segments, result
        for segment in result.segments:
            assert 0 <= segment.start <= segment.end <= len(audio) / RATE, (len(audio) / RATE, segment)


def test_ten_milliseconds_as_json_ends_by_ten_milliseconds(files, capsys):
    rc, out, _ = run(
        capsys, "transcribe", "--model", files["model"], "--timestamps", "--format", "json", files["tenms"]
    )
    assert rc == 0
    segments = json.loads(out)["segments"]
    assert segments and all(s["end"] <= 0.01 for s in segments), segments


# ---- 3. a progress bar over the seconds decoded ----


def test_long_form_reports_progress_window_by_window():
    model, processor = timestamp_model()
    seen: list[float] = []
    audios = [noise(70.0, 3), noise(3.0, 4)]
    transcribe_long(model, processor, audios, options=GREEDY, batch_size=1, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(73.0)
    assert len([s for s in seen if 0 < s < 70.0]) >= 1, seen  # moved during the long file, not only at its end


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only_and_not_when_quiet():
    rlhf = logging.getLogger("rlhf_asr")
    level = rlhf.level
    try:
        rlhf.setLevel(logging.INFO)
        terminal, pipe = _Terminal(), io.StringIO()
        for stream in (terminal, pipe):
            with longform.seconds_progress(70.0, file=stream) as update:
                update(30.0)
                update(70.0)
        assert "70/70" in terminal.getvalue() and pipe.getvalue() == ""
        rlhf.setLevel(logging.WARNING)  # --quiet
        quiet = _Terminal()
        with longform.seconds_progress(70.0, file=quiet) as update:
            update(70.0)
        assert quiet.getvalue() == ""
    finally:
        rlhf.setLevel(level)


def test_transcribe_command_shows_the_bar_on_a_terminal(files, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli_main(["transcribe", "--model", str(files["model"]), str(files["long"]), "--timestamps"]) == 0
    assert "transcribe" in terminal.getvalue() and "70/70" in terminal.getvalue()


# ---- 4. files stay positional after list and boolean options; no deprecation chatter ----


def test_files_after_temperature_or_timestamps_stay_files():
    from rlhf_asr.commands.transcribe import parse_all

    with pytest.raises(UserInputError) as caught:
        parse_all(["--model", "m", "--timestamps", "--temperature", "-1", "a.wav"])
    assert "--temperature" in str(caught.value) and "0 to 2" in str(caught.value)
    assert "a.wav" not in str(caught.value)
    options, long_form = parse_all(["--model", "m", "--timestamps", "--temperature", "0", "0.2", "a.wav", "b.wav"])
    assert long_form.temperature == [0.0, 0.2] and options.audio == ["a.wav", "b.wav"] and options.timestamps
    options, long_form = parse_all(["--model", "m", "--temperature", "0,0.4", "a.wav", "--timestamps", "b.wav"])
    assert long_form.temperature == [0.0, 0.4] and options.audio == ["a.wav", "b.wav"] and options.timestamps
    options, _ = parse_all(["--model", "m", "--timestamps", "False", "a.wav", "--condition_on_prev_tokens", "b.wav"])
    assert options.audio == ["a.wav", "b.wav"] and not options.timestamps
    options, long_form = parse_all(["--model", "m", "--temp", "1", "a.wav"])  # an abbreviation, as argparse allows
    assert long_form.temperature == [1.0] and options.audio == ["a.wav"]
    assert parse_all(["--model", "m", "--temperature=0.2", "a.wav"])[1] == LongFormOptions(temperature=[0.2])


def test_timestamps_run_prints_no_transformers_deprecation(files):
    """In a process of its own: the warning comes from a transformers imported after the CLI set up logging."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "rlhf_asr.commands.cli",
        "transcribe",
        "--model",
        str(files["model"]),
        str(files["short"]),
        "--timestamps",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "deprecated" not in done.stderr, done.stderr[-2000:]
    assert json.loads(done.stdout)["segments"] is not None


# ---- 5. a folder that holds no model ----


@pytest.mark.parametrize("command", ["export-ct2", "transcribe"])
def test_folder_of_wavs_is_not_a_model_folder(files, command, tmp_path, capsys):
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for name in ("a", "b"):
        soundfile.write(wavs / f"{name}.wav", noise(1.0, 5), RATE)
    argv = {
        "export-ct2": ["export-ct2", wavs, tmp_path / "out"],
        "transcribe": ["transcribe", "--model", wavs, files["short"]],
    }[command]
    rc, _, err = run(capsys, *argv)
    line = one_line(rc, err, str(wavs), "not a model folder")
    assert "huggingface.co" not in line and "processor" not in line
    assert not (tmp_path / "out").exists()
