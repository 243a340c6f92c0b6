"""Manifest checks: every bad row is named (file, line, reason) and either stops the run or is counted."""

from __future__ import annotations

import pytest

from manifest_fixtures import good_row, make_audio_folder, write_manifest, write_wav
from rlhf_asr.data.examples import AsrExample, PreferenceExample, Segment
from rlhf_asr.data.language import normalize_language
from rlhf_asr.data.manifest import read_asr_manifest, read_preference_manifest
from rlhf_asr.errors import UserInputError


@pytest.fixture
def folder(tmp_path):
    return make_audio_folder(tmp_path)


def without(key: str) -> dict:
    row = good_row()
    del row[key]
    return row


SEGMENTS = [{"start": 0.0, "end": 1.9, "text": "hello world"}]
# (row on line 2, expected kind, expected words in the reason, extra options)
BAD_ROWS = [
    ('{"audio": {"path": "a.wav"}, ', "invalid JSON", "invalid JSON: Expecting property name", {}),
    ("[1, 2]", "not an object", "row should be a JSON object, got list [1, 2]", {}),
    ('"just a string"', "not an object", "row should be a JSON object, got str 'just a string'", {}),
    (without("chosen"), "missing field", "missing field 'chosen'", {}),
    (without("rejected"), "missing field", "missing field 'rejected'", {}),
    (without("duration"), "missing field", "missing field 'duration'", {}),
    (without("audio"), "missing field", "missing field 'audio'", {}),
    (good_row(audio={"file": "a.wav"}), "missing field", "missing field 'audio.path'", {}),
    (good_row(duration="2.0"), "wrong type", "field 'duration' should be a number, got str", {}),
    (good_row(duration=-1), "wrong type", "field 'duration' should be a positive number, got -1", {}),
    (good_row(chosen=5), "wrong type", "field 'chosen' should be a string, got int", {}),
    (good_row(audio="a.wav"), "wrong type", "field 'audio' should be an object", {}),
    (good_row(language=3), "wrong type", "field 'language' should be a string", {}),
    (good_row(audio={"path": "nope.wav"}), "audio file missing", "audio file missing: {folder}/nope.wav", {}),
    (good_row(audio={"path": "junk.wav"}), "unreadable audio", "unreadable audio: {folder}/junk.wav", {}),
    (good_row(audio={"path": "empty.wav"}), "empty audio", "empty audio: {folder}/empty.wav", {}),
    (good_row(chosen="   "), "whitespace transcript", "field 'chosen' holds only whitespace: write \"\" for", {}),
    (good_row(chosen="\n"), "whitespace transcript", "field 'chosen' holds only whitespace", {}),
    (good_row(rejected=""), "empty transcript", "field 'rejected' is empty: a rejected transcript needs words", {}),
    (good_row(rejected="  "), "empty transcript", "field 'rejected' is empty", {}),
    (good_row(chosen="", rejected=""), "empty transcript", "field 'rejected' is empty", {}),
    (
        good_row(chosen="", chosens=SEGMENTS, rejecteds=SEGMENTS),
        "bad segments",
        "field 'chosens' has segments but 'chosen' is \"\" (no speech)",
        {"timestamps": True},
    ),
    (good_row(chosen="hello  world ", rejected="hello world"), "chosen equals rejected", "chosen equals rejected", {}),
    (good_row(duration=5.0), "duration mismatch", "declared duration 5 s but a.wav lasts 2.00 s", {}),
    (good_row(duration=2.3), "duration mismatch", "declared duration 2.3 s", {"duration_tolerance": (0.1, 0.1)}),
    (good_row(language="klingon"), "unknown language", "unknown language 'klingon' (Whisper knows e.g. en, zh", {}),
    (
        good_row(language="French"),
        "unknown language",
        "language 'French' (fr) is unknown to the tokenizer (it knows e.g. en, zh)",
        {"known_languages": {"en", "zh"}},
    ),
    (good_row(chosens=SEGMENTS), "missing field", "missing field 'rejecteds'", {"timestamps": True}),
    (
        good_row(chosens=SEGMENTS, rejecteds=[]),
        "bad segments",
        "field 'rejecteds' is an empty list",
        {"timestamps": True},
    ),
    (
        good_row(chosens=SEGMENTS, rejecteds=[{"start": 1.5, "end": 1.0, "text": "x"}]),
        "bad segments",
        "rejecteds[0] spans 1.5-1 s: needs start <= end <= 2.00 s",
        {"timestamps": True},
    ),
    (
        good_row(chosens=SEGMENTS, rejecteds=[{"start": 0, "end": 2.5, "text": "x"}]),
        "bad segments",
        "rejecteds[0] spans 0-2.5 s",
        {"timestamps": True},
    ),
    (
        good_row(chosens=[{"start": 0, "end": 1, "text": " "}], rejecteds=SEGMENTS),
        "bad segments",
        "chosens[0] has no text",
        {"timestamps": True},
    ),
    (
        good_row(chosens=[{"start": "0", "end": 1, "text": "a"}], rejecteds=SEGMENTS),
        "bad segments",
        "chosens[0] needs numbers start and end",
        {"timestamps": True},
    ),
    (
        good_row(chosens=[{"start": 0, "end": 10**400, "text": "a"}], rejecteds=SEGMENTS),
        "bad segments",
        "chosens[0] needs numbers start and end",
        {"timestamps": True},
    ),
    # what a file on disk can be instead of usable audio: each says what it is
    (
        good_row(audio={"path": "nan.wav"}),
        "non-finite audio",
        "non-finite audio: {folder}/nan.wav: has NaN or inf samples (first at 1.000 s)",
        {},
    ),
    (good_row(audio={"path": "dir.wav"}), "audio path is a folder", "audio path is a folder: {folder}/dir.wav", {}),
    (good_row(audio={"path": "loop.wav"}), "symlink loop", "symlink loop: {folder}/loop.wav", {}),
    (
        good_row(audio={"path": "broken.wav"}),
        "audio file missing",
        "audio file missing: {folder}/broken.wav: broken symlink to {folder}/gone.wav",
        {},
    ),
    (
        good_row(audio={"path": "fifo.wav"}),
        "not a regular file",
        "not a regular file: {folder}/fifo.wav: is a named pipe, not an audio file",
        {},
    ),
    (good_row(audio={"path": "zero.wav"}), "empty audio", "empty audio: {folder}/zero.wav: empty file (0 bytes)", {}),
    (
        good_row(audio={"path": "junk.wav"}),
        "unreadable audio",
        "unreadable audio: {folder}/junk.wav: cannot read as audio: Format not recognised",
        {},
    ),
    (good_row(audio={"path": ""}), "bad audio path", "field 'audio.path' is empty", {}),
    (
        good_row(audio={"path": "a\0.wav"}),
        "bad audio path",
        "bad audio path: {folder}/a\\0.wav: the path contains a NUL character",
        {},
    ),
    (
        good_row(audio={"path": "x" * 300 + ".wav"}),
        "bad audio path",
        "bad audio path: {folder}/" + "x" * 300 + ".wav: File name too long",
        {},
    ),
    # Whisper's window is a hard limit, not a filter: such a row cannot be one training example
    (
        good_row(audio={"path": "long.wav"}, duration=35.0),
        "over Whisper's 30 s",
        "audio lasts 35.00 s, over Whisper's 30 s window: cut it into clips of at most 30 s",
        {},
    ),
    (good_row(duration=10**400), "wrong type", "field 'duration' should be a positive number, got 1000", {}),
    ('{"audio": ' + "[" * 200_000 + "]" * 200_000 + "}", "invalid JSON", "invalid JSON: nested too deeply to read", {}),
    ('{"duration": 1' + "0" * 5000 + "}", "invalid JSON", "invalid JSON: Exceeds the limit (4300 digits)", {}),
    (good_row(), "duplicate row", "duplicate of line 1: same audio and transcripts", {}),
    # a file cut short (an interrupted copy) or one too short to hold speech, even with no duration filter
    (
        good_row(audio={"path": "cut.wav"}),
        "truncated audio",
        "truncated audio: {folder}/cut.wav: cut short: its header declares 32000 frames (2.00 s), the file holds 8",
        {"min_duration": 0.0},
    ),
    (
        good_row(audio={"path": "tiny.wav"}, duration=0.0005),
        "audio too short",
        "audio lasts 0.5 ms, shorter than one 25 ms frame of Whisper's features: too short to be speech",
        {"min_duration": 0.0},
    ),
    # characters no speech produces (data/text_rules.py), in any transcript field: refused, never stripped
    (good_row(chosen="stop\u0000here"), "forbidden character", "field 'chosen' holds a control character U+0000", {}),
    (good_row(chosen="ding\u0007"), "forbidden character", "field 'chosen' holds a control character U+0007", {}),
    (good_row(rejected="a\u001b[2Jb"), "forbidden character", "field 'rejected' holds a control character U+001B", {}),
    (
        good_row(chosen="abc\u202edef"),
        "forbidden character",
        "field 'chosen' holds a bidirectional override U+202E (RIGHT-TO-LEFT OVERRIDE) at character 3",
        {},
    ),
    (good_row(chosen="\u001f"), "forbidden character", "field 'chosen' holds a control character U+001F", {}),
    (good_row(rejected="x\ud800"), "forbidden character", "field 'rejected' holds a lone surrogate U+D800", {}),
    (
        good_row(chosens=[{"start": 0, "end": 1, "text": "hi\u001b"}], rejecteds=SEGMENTS),
        "forbidden character",
        "chosens[0] text holds a control character U+001B at character 2",
        {"timestamps": True},
    ),
]
BAD_ROW_IDS = [f"{index}-{case[1]}" for index, case in enumerate(BAD_ROWS)]


@pytest.mark.parametrize("row, kind, reason, options", BAD_ROWS, ids=BAD_ROW_IDS)
def test_bad_row_raises_with_file_line_and_reason(folder, row, kind, reason, options):
    good = good_row(chosens=SEGMENTS, rejecteds=SEGMENTS) if options.get("timestamps") else good_row()
    manifest = write_manifest(folder, [good, row, {**good, "rejected": "yellow world"}])
    with pytest.raises(UserInputError) as caught:
        read_preference_manifest(manifest, **options)
    message = str(caught.value)
    assert f"{manifest}:2: " + reason.format(folder=folder) in message
    assert "1 invalid row(s) of 3" in message
    assert "--skip_invalid_rows" in message


@pytest.mark.parametrize("row, kind, reason, options", BAD_ROWS, ids=BAD_ROW_IDS)
def test_bad_row_is_skipped_and_counted(folder, row, kind, reason, options):
    good = good_row(chosens=SEGMENTS, rejecteds=SEGMENTS) if options.get("timestamps") else good_row()
    manifest = write_manifest(folder, [good, row, {**good, "rejected": "yellow world"}])
    report = read_preference_manifest(manifest, skip_invalid=True, **options)
    assert [example.where for example in report.examples] == ["train.jsonl:1", "train.jsonl:3"]
    assert [(problem.line, problem.kind) for problem in report.skipped] == [(2, kind)]
    assert report.summary() == f"train.jsonl: 3 rows read, 1 skipped (1 {kind})"


def test_good_row_is_parsed(folder):
    row = good_row(language="Chinese", chosens=SEGMENTS, rejecteds=[{"start": 0, "end": 2.0, "text": "hello word"}])
    report = read_preference_manifest(write_manifest(folder, ["", row]), timestamps=True)
    assert report.examples == [
        PreferenceExample(
            audio_path=folder / "a.wav", duration=2.0, chosen="hello world", rejected="hello word", language="zh",
            chosen_segments=(Segment(0.0, 1.9, "hello world"),), rejected_segments=(Segment(0.0, 2.0, "hello word"),),
            where="train.jsonl:2",
        )
    ]  # fmt: skip
    assert report.summary() == "train.jsonl: 1 rows read, 0 skipped"


def test_segments_ignored_without_timestamps(folder):
    report = read_preference_manifest(write_manifest(folder, [good_row(chosens="not even a list")]))
    assert report.examples[0].chosen_segments is None


def test_duration_filter_skips_without_error(folder):
    write_wav(folder / "long.wav", 6.0)
    manifest = write_manifest(folder, [good_row(), good_row(audio={"path": "long.wav"}, duration=6.0)])
    report = read_preference_manifest(manifest, max_duration=5)
    assert [example.duration for example in report.examples] == [2.0]
    assert report.summary() == "train.jsonl: 2 rows read, 1 skipped (1 longer than 5 s)"
    assert "audio lasts 6.00 s" in str(report.skipped[0])
    report = read_preference_manifest(manifest, min_duration=3)
    assert report.summary() == "train.jsonl: 2 rows read, 1 skipped (1 shorter than 3 s)"
    assert report.skipped[0].filtered and report.skipped[0].line == 1


def test_whisper_window_is_a_hard_limit(folder):
    with pytest.raises(UserInputError, match="max_duration <= 30 .Whisper's window.*max_duration=40"):
        read_preference_manifest(write_manifest(folder, [good_row()]), max_duration=40)


def test_every_row_skipped_is_an_error(folder):
    manifest = write_manifest(folder, [good_row(), good_row(audio={"path": "nope.wav"})])
    expected = r"no usable rows: train.jsonl: 2 rows read, 2 skipped \(1 shorter than 3 s, 1 audio file missing\)"
    with pytest.raises(UserInputError, match=expected):
        read_preference_manifest(manifest, min_duration=3, skip_invalid=True)


def test_error_lists_first_problems_and_total(folder):
    manifest = write_manifest(folder, [good_row()] + [good_row(rejected="")] * 8)
    message = str(pytest.raises(UserInputError, read_preference_manifest, manifest).value)
    assert "8 invalid row(s) of 9" in message and f"{manifest}:6: " in message
    assert f"{manifest}:7: " not in message and "... and 3 more" in message


def test_relative_paths_resolve_against_manifest_folder(folder, tmp_path_factory, monkeypatch):
    (folder / "sub").mkdir()
    write_wav(folder / "sub" / "b.wav", 1.0)
    manifest = write_manifest(folder, [good_row(audio={"path": "sub/b.wav"}, duration=1.0)])
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert read_preference_manifest(manifest).examples[0].audio_path == folder / "sub" / "b.wav"
    absolute = write_manifest(folder, [good_row(audio={"path": str(folder / "a.wav")})], name="abs.jsonl")
    assert read_preference_manifest(absolute).examples[0].audio_path == folder / "a.wav"


def test_check_audio_off_trusts_declared_duration(folder):
    report = read_preference_manifest(write_manifest(folder, [good_row(duration=5.0)]), check_audio=False)
    assert report.examples[0].duration == 5.0


def test_duration_within_default_tolerance_uses_real_duration(folder):
    report = read_preference_manifest(write_manifest(folder, [good_row(duration=2.4)]))
    assert report.examples[0].duration == 2.0


@pytest.mark.parametrize("value", ["Chinese", "chinese", " zh ", "<|zh|>", "Mandarin"])
def test_normalize_language(value):
    assert normalize_language(value) == "zh"


def test_normalize_language_rejects_unknown():
    with pytest.raises(ValueError, match="unknown language 'Elvish'"):
        normalize_language("Elvish")


def test_known_language_passes(folder):
    report = read_preference_manifest(write_manifest(folder, [good_row(language="english")]), known_languages=["en"])
    assert report.examples[0].language == "en"


def test_asr_manifest(folder):
    rows = [
        {"audio": {"path": "a.wav"}, "duration": 2, "sentence": "hi there", "language": "en",
         "sentences": [{"start": 0, "end": 1.5, "text": "hi there"}]},
        {"audio": {"path": "a.wav"}, "duration": 2, "text": "from text"},
        {"audio": {"path": "a.wav"}, "duration": 2},
    ]  # fmt: skip
    report = read_asr_manifest(write_manifest(folder, rows, "asr.jsonl"), skip_invalid=True)
    assert report.examples == [
        AsrExample(folder / "a.wav", 2.0, "hi there", "en", None, "asr.jsonl:1"),
        AsrExample(folder / "a.wav", 2.0, "from text", None, None, "asr.jsonl:2"),
    ]
    assert str(report.skipped[0]) == f"{folder / 'asr.jsonl'}:3: missing field 'sentence' (or 'text')"
    with pytest.raises(UserInputError, match=r"asr.jsonl:2: missing field 'sentences'"):
        read_asr_manifest(folder / "asr.jsonl", timestamps=True)
    timed = read_asr_manifest(write_manifest(folder, rows[:1], "one.jsonl"), timestamps=True)
    assert timed.examples[0].segments == (Segment(0.0, 1.5, "hi there"),)


def test_asr_transcripts_with_control_characters_are_bad_rows(folder):
    rows = [
        {"audio": {"path": "a.wav"}, "duration": 2, "sentence": "fine"},
        {"audio": {"path": "a.wav"}, "duration": 2, "text": "nul\u0000"},
        {"audio": {"path": "a.wav"}, "duration": 2, "sentence": "ok",
         "sentences": [{"start": 0, "end": 1, "text": "o\u202ek"}]},
    ]  # fmt: skip
    report = read_asr_manifest(write_manifest(folder, rows, "asr.jsonl"), skip_invalid=True, timestamps=False)
    assert [str(problem) for problem in report.skipped] == [
        f"{folder / 'asr.jsonl'}:2: field 'text' holds a control character U+0000 at character 3"
    ]
    with pytest.raises(UserInputError, match=r"asr.jsonl:3: sentences\[0\] text holds a bidirectional override"):
        read_asr_manifest(folder / "asr.jsonl", timestamps=True)


def test_no_speech_rows_are_accepted_and_counted(folder):
    rows = [good_row(), good_row(chosen="", rejected="you"), good_row(chosen="", rejected="Thank you.")]
    report = read_preference_manifest(write_manifest(folder, rows))
    assert [example.chosen for example in report.examples] == ["hello world", "", ""]
    assert [example.no_speech for example in report.examples] == [False, True, True]
    assert report.summary() == "train.jsonl: 3 rows read (2 no-speech), 0 skipped"


def test_no_speech_row_with_timestamps_has_no_segments(folder):
    rows = [good_row(chosen="", rejected="you", rejecteds=[{"start": 0, "end": 1, "text": "you"}])]
    example = read_preference_manifest(write_manifest(folder, rows), timestamps=True).examples[0]
    assert example.chosen_segments == () and example.rejected_segments == (Segment(0.0, 1.0, "you"),)
    rows = [good_row(chosen="", rejected="you", chosens=[], rejecteds=[{"start": 0, "end": 1, "text": "you"}])]
    assert read_preference_manifest(write_manifest(folder, rows), timestamps=True).examples[0].chosen_segments == ()


def test_asr_no_speech_rows(folder):
    rows = [
        {"audio": {"path": "a.wav"}, "duration": 2, "sentence": "hi there"},
        {"audio": {"path": "a.wav"}, "duration": 2, "sentence": ""},
        {"audio": {"path": "a.wav"}, "duration": 2, "text": ""},
        {"audio": {"path": "a.wav"}, "duration": 2, "sentence": " \t"},
    ]
    report = read_asr_manifest(write_manifest(folder, rows, "asr.jsonl"), skip_invalid=True)
    assert [(example.text, example.no_speech) for example in report.examples] == [("hi there", False), ("", True)]
    skipped = [(problem.line, problem.kind) for problem in report.skipped]
    assert skipped == [(3, "duplicate row"), (4, "whitespace transcript")]
    assert "asr.jsonl:4: field 'sentence' holds only whitespace: write \"\" for a clip with no speech" in str(
        report.skipped[1]
    )
    expected = "asr.jsonl: 4 rows read (1 no-speech), 2 skipped (1 duplicate row, 1 whitespace transcript)"
    assert report.summary() == expected
    timed = read_asr_manifest(write_manifest(folder, rows[1:2], "timed.jsonl"), timestamps=True)
    assert timed.examples[0].segments == ()
