"""The data contract: one dataset-options object, one place that builds a DataSource."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from rlhf_asr.commands.data_options import DataOptions
from rlhf_asr.data.options import Columns, DatasetOptions, DataSource, as_source

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rlhf_asr"
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


def test_one_place_builds_a_data_source():
    """Every DataSource the package makes comes from DatasetOptions.source."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DataSource":
                calls.append(str(path.relative_to(PACKAGE)))
    assert calls == ["data/options.py"]
