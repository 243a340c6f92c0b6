"""Reading a manifest file (`data/json_rows.py`: read_rows): encodings, line ends, nesting, arrays, links."""

from __future__ import annotations

import json

import pytest

from manifest_fixtures import good_row, make_audio_folder, write_manifest, write_wav
from rlhf_asr.data.manifest import read_preference_manifest
from rlhf_asr.errors import UserInputError


@pytest.fixture
def folder(tmp_path):
    return make_audio_folder(tmp_path)


@pytest.mark.parametrize(
    "content, reason",
    [(None, "not found"), ("", "is empty"), ("\n  \n", "is empty"), ("[]", "is empty"),
     ('[\n {"a": 1},\n {"a" 2}\n]', ":3: invalid JSON array: Expecting ':' delimiter")],
)  # fmt: skip
def test_unusable_manifest(tmp_path, content, reason):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserInputError, match="m.json") as caught:
        read_preference_manifest(path)
    assert reason in str(caught.value)


def test_manifest_folder_is_an_error(tmp_path):
    with pytest.raises(UserInputError, match="is not a file .it is a folder."):
        read_preference_manifest(tmp_path)


GOOD_LINE = json.dumps(good_row())
DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize(
    "content, reason",
    [(("\n" + GOOD_LINE + "\n").encode("utf-16"), "m.json is UTF-16 text (it starts with a UTF-16 byte-order mark)"),
     (b"RIFF\0\0\0\0WAVEfmt ", ":1: a NUL byte: the manifest is not text"),
     (f"[\n{GOOD_LINE},\n{DEEP}\n]".encode(), ":3: invalid JSON array: nested too deeply to read"),
     (f'[\n{GOOD_LINE},\n{{"duration": 1{"0" * 5000}}}\n]'.encode(), ":3: invalid JSON array: Exceeds the limit"),
     (f'[\n{GOOD_LINE},\n {{"chosen": "caf\xe9"}}\n]'.encode("latin-1"), ":3: not UTF-8 text (byte 0xe9 at column 17)"),
     (json.dumps(good_row(), indent=2).encode(), ":1: each row must be one JSON object on one line"),
     ((json.dumps(good_row(), indent=2) * 2).encode(), ":1: each row must be one JSON object on one line")],
    ids=["utf-16", "binary", "deep array", "huge number in array", "latin-1 array", "pretty object", "pretty rows"],
)  # fmt: skip
def test_unreadable_manifest_names_the_line(tmp_path, content, reason):
    path = tmp_path / "m.json"
    path.write_bytes(content)
    for skip in (False, True):  # the file as a whole cannot be read: no row to skip
        with pytest.raises(UserInputError) as caught:
            read_preference_manifest(path, skip_invalid=skip)
        assert reason in str(caught.value) and str(path) in str(caught.value)


def test_non_utf8_line_is_a_bad_row_named_by_line(folder):
    manifest = folder / "train.jsonl"
    rows = [GOOD_LINE, json.dumps(good_row(chosen="caf\u00e9"), ensure_ascii=False), GOOD_LINE.replace("word", "ward")]
    manifest.write_bytes("\n".join(rows).encode("latin-1"))
    with pytest.raises(UserInputError, match=r"train.jsonl:2: not UTF-8 text \(byte 0xe9 at column 61\): save the"):
        read_preference_manifest(manifest)
    report = read_preference_manifest(manifest, skip_invalid=True)
    assert report.summary() == "train.jsonl: 3 rows read, 1 skipped (1 not UTF-8)"


def test_manifest_symlink_loop_and_broken_link(tmp_path):
    (tmp_path / "m.jsonl").symlink_to(tmp_path / "n.jsonl")
    (tmp_path / "n.jsonl").symlink_to(tmp_path / "m.jsonl")
    with pytest.raises(UserInputError, match="m.jsonl is a symlink loop"):
        read_preference_manifest(tmp_path / "m.jsonl")
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(UserInputError, match="b.jsonl not found .broken symlink to .*gone.jsonl"):
        read_preference_manifest(tmp_path / "b.jsonl")


@pytest.mark.parametrize(
    "text",
    ["\ufeff{a}\n{b}\n", "{a}\r\n{b}\r\n", "{a}\r{b}\r", "\n\n{a}\n   \n\n{b}", "\ufeff[\r\n{a},\r\n{b}\r\n]\r\n"],
    ids=["BOM", "CRLF", "CR", "blank lines", "BOM CRLF array"],
)
def test_bom_crlf_and_blank_lines_are_read(folder, text):
    """Not failures before either; kept because the reader now works on bytes (a BOM, CR, blank line)."""
    a, b = json.dumps(good_row()), json.dumps(good_row(rejected="yellow world"))
    (folder / "m.json").write_bytes(text.replace("{a}", a).replace("{b}", b).encode())
    report = read_preference_manifest(folder / "m.json")
    assert [example.rejected for example in report.examples] == ["hello word", "yellow world"]


def test_duplicates_differ_by_language_or_audio_are_kept(folder):
    write_wav(folder / "b.wav", 2.0)
    rows = [good_row(), good_row(language="en"), good_row(audio={"path": "b.wav"}), good_row(audio={"path": "./a.wav"})]
    report = read_preference_manifest(write_manifest(folder, rows), skip_invalid=True)
    assert [(problem.line, problem.reason) for problem in report.skipped] == [
        (4, "duplicate of line 1: same audio and transcripts")  # ./a.wav is a.wav
    ]


def test_over_30s_is_an_error_while_max_duration_below_30s_filters(folder):
    write_wav(folder / "long20.wav", 20.0)
    rows = [good_row(), good_row(audio={"path": "long20.wav"}, duration=20.0),
            good_row(audio={"path": "long.wav"}, duration=35.0)]  # fmt: skip
    manifest = write_manifest(folder, rows)
    with pytest.raises(UserInputError, match="train.jsonl:3: audio lasts 35.00 s, over Whisper's 30 s window"):
        read_preference_manifest(manifest, max_duration=10)
    report = read_preference_manifest(manifest, max_duration=10, skip_invalid=True)
    assert report.summary() == "train.jsonl: 3 rows read, 2 skipped (1 longer than 10 s, 1 over Whisper's 30 s)"
    assert [problem.filtered for problem in report.skipped] == [True, False]
    with_check_off = read_preference_manifest(manifest, skip_invalid=True, check_audio=False)
    assert with_check_off.summary() == "train.jsonl: 3 rows read, 1 skipped (1 over Whisper's 30 s)"


def test_json_array_form_keeps_line_numbers(folder):
    manifest = folder / "train.json"
    manifest.write_text(json.dumps([good_row(), good_row(rejected=""), good_row(rejected="yellow world")], indent=2))
    report = read_preference_manifest(manifest, skip_invalid=True)
    assert [example.where for example in report.examples] == ["train.json:2", "train.json:18"]
    assert [(problem.line, problem.kind) for problem in report.skipped] == [(10, "empty transcript")]
    assert [manifest.read_text().splitlines()[line - 1] for line in (2, 10, 18)] == ["  {"] * 3


def test_jsonl_whose_first_row_is_a_list(folder):
    report = read_preference_manifest(write_manifest(folder, ["[1]", good_row()]), skip_invalid=True)
    assert [(problem.line, problem.kind) for problem in report.skipped] == [(1, "not an object")]
