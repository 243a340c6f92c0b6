"""The data contract: one dataset-options object, one place that builds a DataSource, the row checks as one object."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from manifest_fixtures import good_row, make_audio_folder, write_manifest
from rlhf_asr.commands.data_options import DataOptions
from rlhf_asr.data.manifest import read_manifest, read_preference_manifest
from rlhf_asr.data.options import Columns, DatasetOptions, DataSource, as_source
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.errors import UserInputError

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "rlhf_asr"
SHARED = [field.name for field in dataclasses.fields(DatasetOptions)]


def test_dataset_options_build_the_source():
    options = DatasetOptions(data_config="en", audio_column="speech", text_column="transcript", streaming=True)
    source = options.source("someone/set", "dev", "test", "--data_split", 5)
    assert source == DataSource(
        "someone/set", "dev", "en", Columns(audio="speech", text="transcript"), True, "test", 5, "--data_split"
    )


def test_a_path_becomes_a_source_with_the_default_options():
    assert as_source(Path("prefs.jsonl")) == DataSource("prefs.jsonl")
    assert as_source("x", "test", 3) == DataSource("x", default_split="test", limit=3)
    given = DataSource("y", split="dev")
    assert as_source(given, "test") is given


def test_evaluate_and_make_pairs_name_the_split_data_split():
    assert [field.name for field in dataclasses.fields(DataOptions)] == ["data_split", *SHARED]
    source = DataOptions(data_split="dev", chosen_column="good").data_source("d", "test", 2)
    assert (source.split, source.default_split, source.split_option, source.limit) == ("dev", "test", "--data_split", 2)
    assert source.columns.chosen == "good"


def test_train_shares_the_dataset_options():
    from rlhf_asr.trainer.config import DataArguments

    names = [field.name for field in dataclasses.fields(DataArguments)]
    assert issubclass(DataArguments, DatasetOptions)
    assert names[names.index("test_split") + 1 :] == [*SHARED, "stream_shuffle_buffer"]  # --help's order, as before
    args = DataArguments(train_data="t", test_split="dev", text_column="words", min_audio_len=1.0)
    train, test = args.data_source("t", "train", 4), args.data_source("h", "test")
    assert (train.split, train.default_split, train.split_option, train.limit) == (None, "train", "--train_split", 4)
    assert (test.location, test.split, test.split_option, test.columns.text) == ("h", "dev", "--test_split", "words")
    checks = args.row_checks(["en"], kbest_rows=True)
    assert checks == RowChecks(min_duration=1.0, known_languages=frozenset({"en"}), kbest_rows=True)


def test_one_place_builds_a_data_source():
    """Every DataSource the package makes comes from DatasetOptions.source."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DataSource":
                calls.append(str(path.relative_to(PACKAGE)))
    assert calls == ["data/options.py"]


def test_row_checks_are_checked_when_made():
    window = r"0 <= min_duration <= max_duration <= 30 .Whisper's window., got min_duration=2, max_duration=1"
    with pytest.raises(UserInputError, match=window):
        RowChecks(min_duration=2, max_duration=1)
    with pytest.raises(UserInputError, match=r"duration_tolerance must be \(seconds, fraction\) >= 0, got \(0.5, -1\)"):
        RowChecks(duration_tolerance=[0.5, -1])
    assert RowChecks(max_duration=float("inf"), long_audio=True).max_duration == float("inf")
    assert RowChecks(known_languages=["en", "de"]).known_languages == frozenset({"en", "de"})


def test_readers_take_the_checks_whole_or_changed(tmp_path):
    folder = make_audio_folder(tmp_path)
    manifest = write_manifest(folder, [good_row(), good_row(rejected="")])
    whole = read_preference_manifest(manifest, RowChecks(skip_invalid=True))
    changed = read_preference_manifest(manifest, skip_invalid=True)
    assert whole == changed == read_manifest(manifest, "preference", RowChecks(), skip_invalid=True)
    assert [problem.kind for problem in whole.skipped] == ["empty transcript"]
    with pytest.raises(TypeError):
        read_preference_manifest(manifest, min_audio_len=1)  # RowChecks' own names only
