"""Datasets that are not what they claim to be (issue 22): each stops in one line naming the file,
row and reason, or is a counted row problem; and the one split rule every command follows."""

from __future__ import annotations

import logging

import datasets
import pytest
from datasets import Audio, Dataset, DatasetDict

from rlhf_asr.data.sources import Columns, DataSource, read_data
from rlhf_asr.errors import UserInputError
from whisper_fixtures import write_tone

PAIRS = [("the cat sat", "the hat sat"), ("hello world", "yellow world"), ("good morning", "good mourning")]


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Exported audio and `datasets`' Arrow cache inside the test's folder, never the user's."""
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def pairs_dataset(folder, pairs=PAIRS, audio_bytes: dict[int, bytes] | None = None) -> Dataset:
    audio = [
        {"bytes": write_tone(folder / f"tone{i}.wav", 1.0, 300 + 50 * i, seed=i).read_bytes(), "path": f"clip{i}.wav"}
        for i in range(len(pairs))
    ]
    for index, data in (audio_bytes or {}).items():
        audio[index] = {"bytes": data, "path": f"clip{index}.wav"}
    data = {"audio": audio, "chosen": [c for c, _ in pairs], "rejected": [r for _, r in pairs]}
    return Dataset.from_dict(data).cast_column("audio", Audio())


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


# --- item 1: files that are no dataset ------------------------------------------------------


def test_a_glob_matching_nothing_is_one_line(tmp_path):
    (tmp_path / "dir").mkdir()
    pattern = str(tmp_path / "dir" / "*.parquet")
    with pytest.raises(UserInputError) as error:
        read_data(pattern, "asr")
    assert one_line(error) == f"parquet files {pattern}: the pattern matches no file"


@pytest.mark.parametrize(
    "name, text, reason",
    [
        ("notes.arrow", "hello\n", "not an Arrow file (File is too small: 6)"),
        ("notes.parquet", "hello\n", "not a parquet file (Parquet file size is 6 bytes"),
        ("long.parquet", "some words, not a table\n" * 10, "not a parquet file (Parquet magic bytes not found"),
    ],
)
def test_a_text_file_named_arrow_or_parquet_is_one_line(tmp_path, name, text, reason):
    (tmp_path / name).write_text(text)
    with pytest.raises(UserInputError) as error:
        read_data(str(tmp_path / name), "preference")
    assert one_line(error).startswith(f"{tmp_path / name}: {reason}")


def test_a_glob_names_its_one_bad_file(tmp_path):
    pairs_dataset(tmp_path).to_parquet(str(tmp_path / "a.parquet"))
    (tmp_path / "b.parquet").write_text("not parquet at all, just text\n")
    with pytest.raises(UserInputError) as error:
        read_data(DataSource(str(tmp_path / "*.parquet"), streaming=True), "preference")
    assert one_line(error).startswith(f"{tmp_path / 'b.parquet'}: not a parquet file")


def test_a_glob_of_good_files_reads_them_all(tmp_path):
    pairs_dataset(tmp_path).to_parquet(str(tmp_path / "a.parquet"))
    pairs_dataset(tmp_path, [(c + " again", r) for c, r in PAIRS]).to_parquet(str(tmp_path / "b.parquet"))
    assert len(read_data(str(tmp_path / "*.parquet"), "preference").examples) == 6


# --- item 2: audio bytes that are cut short or too short ------------------------------------


def cut_wav(folder) -> bytes:
    """A 1 s WAV cut after its first 8 samples: the header still declares 16000 frames."""
    whole = write_tone(folder / "whole.wav", 1.0).read_bytes()
    return whole[: whole.index(b"data") + 8 + 8 * 2]  # the chunk's id and size, then 8 16-bit samples


def eight_samples(folder) -> bytes:
    """A WAV that really holds 8 samples (0.5 ms): nothing in it can be speech."""
    return write_tone(folder / "eight.wav", 8 / 16000).read_bytes()


@pytest.mark.parametrize(
    "make, expected",
    [
        (cut_wav, "dataset cut, row 1: truncated audio: the bytes in column 'audio' (clip1.wav): cut short:"),
        (eight_samples, "dataset cut, row 1: audio lasts 0.5 ms, shorter than one 25 ms frame"),
    ],
)
def test_evaluation_refuses_a_row_whose_audio_is_cut_or_too_short(tmp_path, make, expected):
    """Evaluation reads with min_duration 0: these rows must still not pass every check and be scored."""
    pairs_dataset(tmp_path, audio_bytes={1: make(tmp_path)}).save_to_disk(tmp_path / "cut")
    with pytest.raises(UserInputError, match="1 invalid row") as error:
        read_data(str(tmp_path / "cut"), "preference", min_duration=0.0)
    assert expected in str(error.value)
    report = read_data(str(tmp_path / "cut"), "preference", min_duration=0.0, skip_invalid=True)
    assert len(report.examples) == 2 and [problem.line for problem in report.skipped] == [1]


# --- item 5: corrupt audio bytes name the dataset, row and column, not a cache file ---------


def test_corrupt_audio_bytes_name_the_row_and_column_not_the_cache_copy(tmp_path):
    data = pairs_dataset(tmp_path).to_dict()
    data["speech"] = data.pop("audio")
    data["speech"][2] = {"bytes": b"not audio at all", "path": "broken.wav"}
    Dataset.from_dict(data).cast_column("speech", Audio()).save_to_disk(tmp_path / "broken")
    source = DataSource(str(tmp_path / "broken"), columns=Columns(audio="speech"))
    report = read_data(source, "preference", skip_invalid=True)
    (problem,) = report.skipped
    assert str(problem) == (
        "dataset broken, row 2: unreadable audio: the bytes in column 'speech' (broken.wav): "
        "cannot read as audio: Format not recognised."
    )
    assert str(tmp_path / "cache") not in str(problem)


def test_an_audio_value_that_is_neither_bytes_nor_a_path_names_the_column(tmp_path):
    Dataset.from_dict({"sound": [str(write_tone(tmp_path / "a.wav")), ""], "sentence": ["hi", "ho"]}).save_to_disk(
        tmp_path / "paths"
    )
    report = read_data(DataSource(str(tmp_path / "paths"), columns=Columns(audio="sound")), "asr", skip_invalid=True)
    assert [str(problem) for problem in report.skipped] == [
        "dataset paths, row 1: column 'sound' should hold a file path or audio bytes, got str ''"
    ]


# --- item 3: characters no speech produces ---------------------------------------------------


@pytest.mark.parametrize(
    "pairs, reason",
    [
        ([PAIRS[0], ("stop\x00here", "stop here"), PAIRS[2]], "field 'chosen' holds a control character U+0000"),
        ([PAIRS[0], ("hello", "he\x1b[31mllo"), PAIRS[2]], "field 'rejected' holds a control character U+001B"),
        ([PAIRS[0], ("abc\u202edef", "abc def"), PAIRS[2]], "field 'chosen' holds a bidirectional override U+202E"),
    ],
)
def test_a_dataset_transcript_with_control_or_bidi_characters_is_a_bad_row(tmp_path, pairs, reason):
    pairs_dataset(tmp_path, pairs).save_to_disk(tmp_path / "ctl")
    with pytest.raises(UserInputError) as error:
        read_data(str(tmp_path / "ctl"), "preference")
    assert f"dataset ctl, row 1: {reason}" in str(error.value)
    report = read_data(str(tmp_path / "ctl"), "preference", skip_invalid=True)
    assert len(report.examples) == 2 and report.skipped[0].kind == "forbidden character"


def test_an_asr_dataset_sentence_with_a_bell_is_a_bad_row(tmp_path):
    clips = [str(write_tone(tmp_path / f"{i}.wav", 1.0, 300 + 50 * i, seed=i)) for i in range(2)]
    Dataset.from_dict({"audio": clips, "text": ["fine words", "ding\x07dong"]}).save_to_disk(tmp_path / "asr")
    report = read_data(str(tmp_path / "asr"), "asr", skip_invalid=True)
    assert [str(problem) for problem in report.skipped] == [
        "dataset asr, row 1: field 'text' holds a control character U+0007 at character 4"
    ]


# --- item 4: one split rule -----------------------------------------------------------------


def save_splits(tmp_path, *names: str):
    train = pairs_dataset(tmp_path)
    DatasetDict({name: train for name in names}).save_to_disk(tmp_path / "dd")
    return str(tmp_path / "dd")


def test_the_usual_split_missing_with_several_splits_lists_them_and_names_the_option(tmp_path):
    folder = save_splits(tmp_path, "train", "validation")
    for option in ("--data_split", "--test_split"):
        with pytest.raises(UserInputError) as error:
            read_data(DataSource(folder, default_split="test", split_option=option), "preference")
        assert one_line(error) == (f"dataset dd: no split 'test' (it has train, validation); choose one with {option}")


def test_the_usual_split_missing_with_one_split_takes_it_and_says_so(tmp_path, rlhf_log):
    folder = save_splits(tmp_path, "train")
    with rlhf_log.at_level(logging.INFO, logger="rlhf_asr"):
        report = read_data(DataSource(folder, default_split="test", split_option="--data_split"), "preference")
    assert report.examples[0].where == "dataset dd (train), row 0"
    said = [record.getMessage() for record in rlhf_log.records]
    assert said.count("dataset dd has no split 'test': using its only split, 'train' (--data_split names one)") == 1


def test_a_named_split_is_never_replaced(tmp_path):
    folder = save_splits(tmp_path, "train")
    with pytest.raises(UserInputError) as error:
        read_data(DataSource(folder, split="training", split_option="--train_split"), "preference")
    assert one_line(error) == "dataset dd: no split 'training' (it has train); choose one with --train_split"


def test_the_usual_split_among_several_is_taken_and_said(tmp_path, rlhf_log):
    folder = save_splits(tmp_path, "train", "test")
    with rlhf_log.at_level(logging.INFO, logger="rlhf_asr"):
        report = read_data(DataSource(folder, default_split="train", split_option="--data_split"), "preference")
    assert report.examples[0].where == "dataset dd (train), row 0"
    said = [record.getMessage() for record in rlhf_log.records]
    assert "dataset dd: split 'train' (it has train, test; --data_split names another)" in said
