"""Shared fixtures and settings; the tiny-Whisper factory itself is tests/whisper_fixtures.py."""

from __future__ import annotations

import logging
import os

import pytest
import torch
from transformers import WhisperForConditionalGeneration

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# Under pytest-xdist each worker gets one core: threads beyond that only contend with the other workers.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads() // _WORKERS)))


@pytest.fixture
def tiny_model() -> WhisperForConditionalGeneration:
    from whisper_fixtures import tiny_whisper_config

    torch.manual_seed(0)
    return WhisperForConditionalGeneration(tiny_whisper_config()).eval()


@pytest.fixture
def rlhf_log(caplog):
    """caplog that sees every `rlhf_asr` record, also after the CLI's logging set-up (which stops propagation)."""
    logger = logging.getLogger("rlhf_asr")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # else each record reaches caplog twice: here and through the root logger
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny model and tone manifests for training tests (see train_fixtures.py); modules may define their own."""
    from train_fixtures import PAIRS, write_manifest
    from whisper_fixtures import make_tiny_whisper_dir

    folder = tmp_path_factory.mktemp("train")
    return {
        "model": make_tiny_whisper_dir(folder),
        "train": write_manifest(folder, "train", PAIRS),
        "test": write_manifest(folder, "test", PAIRS[:2]),
        "root": folder,
    }
