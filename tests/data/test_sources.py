"""Hugging Face datasets as data (data/sources.py): each input form, built here with `datasets` itself."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import pytest
from datasets import Audio, Dataset, DatasetDict

from rlhf_asr.data.sources import Columns, DataSource, data_kind, is_manifest, read_data
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.encoder_cache import audio_key
from whisper_fixtures import write_tone

PAIRS = [("the cat sat", "the hat sat"), ("hello world", "yellow world"), ("good morning", "good mourning")]


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Exported audio and `datasets`' Arrow cache inside the test's folder, never the user's."""
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def tone_bytes(folder, i: int, seconds: float = 1.0) -> bytes:
    return write_tone(folder / f"tone{i}.wav", seconds, 300 + 50 * i, seed=i).read_bytes()


def pairs_dataset(folder, pairs=PAIRS, tone: int = 0, chosen="chosen", rejected="rejected") -> Dataset:
    """Audio stored inside the dataset as bytes (what save_to_disk / to_parquet / the hub hold)."""
    audio = [{"bytes": tone_bytes(folder, i + tone), "path": f"clip{i}.wav"} for i in range(len(pairs))]
    data = {"audio": audio, chosen: [c for c, _ in pairs], rejected: [r for _, r in pairs], "language": ["en"] * 3}
    return Dataset.from_dict(data).cast_column("audio", Audio())


def test_save_to_disk_folder_reads_as_preference_rows(tmp_path):
    pairs_dataset(tmp_path).save_to_disk(tmp_path / "prefs")
    assert not is_manifest(tmp_path / "prefs") and data_kind(str(tmp_path / "prefs")) == "preference"
    report = read_data(str(tmp_path / "prefs"), "preference")
    assert [(e.chosen, e.rejected, e.language) for e in report.examples] == [(c, r, "en") for c, r in PAIRS]
    assert [e.where for e in report.examples] == [f"dataset prefs, row {i}" for i in range(3)]
    assert report.examples[1].audio_path.read_bytes() == (tmp_path / "tone1.wav").read_bytes()
    assert report.examples[0].duration == pytest.approx(1.0)


def test_dataset_dict_takes_the_split_asked_for(tmp_path):
    train = pairs_dataset(tmp_path)
    DatasetDict({"train": train, "test": train.select([0])}).save_to_disk(tmp_path / "dd")
    assert len(read_data(DataSource(str(tmp_path / "dd"), default_split="test"), "preference").examples) == 1
    assert len(read_data(DataSource(str(tmp_path / "dd")), "preference").examples) == 3
    with pytest.raises(UserInputError, match=r"no split 'dev' \(it has train, test\)"):
        read_data(DataSource(str(tmp_path / "dd"), split="dev"), "preference")


def test_embedded_audio_is_keyed_by_its_content_not_its_row_or_name(tmp_path):
    """Two datasets whose row 0 is 'clip0.wav' but other audio: other encoder-cache keys; same audio: same key."""
    pairs_dataset(tmp_path, tone=0).save_to_disk(tmp_path / "a")
    pairs_dataset(tmp_path, tone=5).save_to_disk(tmp_path / "b")
    pairs_dataset(tmp_path, tone=0).save_to_disk(tmp_path / "c")
    first = [read_data(str(tmp_path / name), "preference").examples[0].audio_path for name in "abc"]
    keys = [audio_key(path) for path in first]
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_parquet_streaming_and_column_mapping(tmp_path):
    pairs_dataset(tmp_path, chosen="good", rejected="bad").to_parquet(str(tmp_path / "p.parquet"))
    columns = Columns(chosen="good", rejected="bad")
    for streaming in (False, True):
        source = DataSource(str(tmp_path / "p.parquet"), columns=columns, streaming=streaming)
        report = read_data(source, "preference")
        assert [e.chosen for e in report.examples] == [c for c, _ in PAIRS]
    expected = r"no column 'chosen' \(it has audio, good, bad, language\); .*--chosen_column"
    with pytest.raises(UserInputError, match=expected):
        read_data(str(tmp_path / "p.parquet"), "preference")


def test_arrow_file(tmp_path):
    saved = tmp_path / "saved"
    pairs_dataset(tmp_path).save_to_disk(saved)
    arrow = next(saved.glob("*.arrow"))
    assert len(read_data(str(arrow), "preference").examples) == 3


def test_audiofolder_with_metadata_csv(tmp_path):
    folder = tmp_path / "af"
    for i in range(len(PAIRS)):
        write_tone(folder / "clips" / f"{i}.wav", 1.0, 300 + 50 * i, seed=i)
    (folder / "metadata.csv").write_text(
        "file_name,transcription\n" + "".join(f"clips/{i}.wav,{text}\n" for i, (text, _) in enumerate(PAIRS))
    )
    expected = r"audiofolder af has neither columns .*\(--text_column\); it has file_name, transcription"
    with pytest.raises(UserInputError, match=expected):
        data_kind(str(folder))
    source = DataSource(str(folder), columns=Columns(text="transcription"))
    assert data_kind(source) == "asr"
    report = read_data(source, "asr")
    assert [e.text for e in report.examples] == [c for c, _ in PAIRS]
    assert report.examples[2].audio_path == (folder / "clips" / "2.wav").absolute()


def test_bad_rows_are_named_by_index_and_counted(tmp_path):
    pairs = [PAIRS[0], ("something", ""), PAIRS[2]]
    pairs_dataset(tmp_path, pairs).save_to_disk(tmp_path / "bad")
    with pytest.raises(UserInputError, match=r"dataset bad, row 1: field 'rejected' is empty"):
        read_data(str(tmp_path / "bad"), "preference")
    report = read_data(str(tmp_path / "bad"), "preference", skip_invalid=True)
    assert len(report.examples) == 2
    assert [str(problem) for problem in report.skipped] == [
        "dataset bad, row 1: field 'rejected' is empty: a rejected transcript needs words"
    ]
    assert report.summary() == "bad: 3 rows read, 1 skipped (1 empty transcript)"


def test_unreadable_embedded_audio_is_a_counted_row_problem(tmp_path):
    data = pairs_dataset(tmp_path).to_dict()
    data["audio"][2] = {"bytes": b"not audio at all", "path": "broken.wav"}
    Dataset.from_dict(data).cast_column("audio", Audio()).save_to_disk(tmp_path / "broken")
    report = read_data(str(tmp_path / "broken"), "preference", skip_invalid=True)
    assert len(report.examples) == 2 and report.skipped[0].line == 2 and report.skipped[0].kind == "unreadable audio"


def test_missing_hub_dataset_offline_is_one_quick_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(UserInputError) as error:
        read_data(DataSource("someone/no-such-set", config="clean", split="test"), "asr")
    assert time.perf_counter() - started < 10
    message = str(error.value)
    assert "\n" not in message and "'someone/no-such-set'" in message and "(config 'clean')" in message
    assert "local Hugging Face cache" in message


def test_json_manifests_still_go_to_the_manifest_reader(tmp_path):
    write_tone(tmp_path / "a.wav")
    row = {"audio": {"path": "a.wav"}, "duration": 1.0, "sentence": "hi there"}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    assert is_manifest(tmp_path / "m.jsonl") and is_manifest(tmp_path / "missing.jsonl")
    assert data_kind(str(tmp_path / "m.jsonl")) is None
    assert read_data(str(tmp_path / "m.jsonl"), "asr").examples[0].where == "m.jsonl:1"


def fake_hub_cache(tmp_path, dataset: Dataset, repo: str, config: str, split: str):
    """The layout `load_dataset` leaves in HF_DATASETS_CACHE after a hub download, built from a local parquet."""
    import shutil

    from datasets import load_dataset

    dataset.to_parquet(str(tmp_path / "hub.parquet"))
    load_dataset("parquet", data_files={split: str(tmp_path / "hub.parquet")}, cache_dir=str(tmp_path / "prep"))
    prepared = next(path for path in (tmp_path / "prep" / "parquet").glob("*/*/*") if path.is_dir())
    owner, name = repo.split("/")
    target = Path(datasets.config.HF_DATASETS_CACHE) / f"{owner}___{name}" / config / "0.0.0" / prepared.name
    shutil.copytree(prepared, target)
    (target / f"parquet-{split}.arrow").rename(target / f"{name}-{split}.arrow")
    info = json.loads((target / "dataset_info.json").read_text())
    (target / "dataset_info.json").write_text(json.dumps({**info, "dataset_name": name, "config_name": config}))


def test_hub_dataset_found_in_the_local_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asr = pairs_dataset(tmp_path).rename_column("chosen", "transcript").remove_columns("rejected")
    fake_hub_cache(tmp_path, asr, "someone/tiny-set", "en", "test")
    source = DataSource("someone/tiny-set", config="en", split="test", columns=Columns(text="transcript"))
    assert is_manifest("someone/tiny-set") is False and data_kind(source) == "asr"
    report = read_data(source, "asr")
    assert [e.text for e in report.examples] == [c for c, _ in PAIRS]
    assert report.examples[0].where == "dataset someone/tiny-set/en (test), row 0"
    with pytest.raises(UserInputError, match=r"no split 'train' \(it has test\)"):
        read_data(DataSource("someone/tiny-set", config="en", split="train", columns=source.columns), "asr")
