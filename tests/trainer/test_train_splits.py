"""train's --train_split/--test_split follow the one split rule (data/sources.py), as evaluate and make-pairs do."""

from __future__ import annotations

import logging

import datasets
import pytest

from rlhf_asr.errors import UserInputError
from train_fixtures import preference_dataset, train


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def test_train_split_named_wrong_names_train_split_and_unnamed_takes_the_only_split(workspace, tmp_path, rlhf_log):
    pairs = preference_dataset(tmp_path)
    datasets.DatasetDict({"train": pairs, "validation": pairs}).save_to_disk(tmp_path / "dd")
    data = ["--train_data", str(tmp_path / "dd"), "--max_steps", "1"]
    with pytest.raises(UserInputError) as error:
        train(workspace, tmp_path / "a", *data, "--train_split", "training")
    assert (
        str(error.value) == "dataset dd: no split 'training' (it has train, validation); choose one with --train_split"
    )
    with pytest.raises(UserInputError) as error:
        train(workspace, tmp_path / "b", *data, "--test_data", str(tmp_path / "dd"))
    assert str(error.value) == "dataset dd: no split 'test' (it has train, validation); choose one with --test_split"
    datasets.DatasetDict({"training": pairs}).save_to_disk(tmp_path / "one")
    with rlhf_log.at_level(logging.INFO, logger="rlhf_asr"):
        summary = train(workspace, tmp_path / "c", "--train_data", str(tmp_path / "one"), "--max_steps", "1")
    assert summary["global_step"] == 1
    said = [record.getMessage() for record in rlhf_log.records]
    assert "dataset one has no split 'train': using its only split, 'training' (--train_split names one)" in said
