"""Library chatter stays out of a command's output unless -v, even for libraries imported later."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
from rlhf_asr.logs import setup_logging
setup_logging({verbosity})
import transformers  # imported after the set-up, as every command does it
from transformers.utils import logging as hf_logging
hf_logging.get_logger("transformers.test").warning("library chatter")
"""


def _run(verbosity: int, **env) -> str:
    import os

    environment = {
        k: v for k, v in os.environ.items() if not k.endswith("_VERBOSITY") and k != "RLHF_ASR_SET_VERBOSITY"
    }
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(verbosity=verbosity)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=True,
    )
    return result.stderr


@pytest.mark.parametrize(("verbosity", "shown"), [(0, False), (-1, False), (1, True)])
def test_transformers_warnings_follow_our_verbosity_when_imported_after_the_set_up(verbosity, shown):
    assert ("library chatter" in _run(verbosity)) is shown


def test_a_user_s_own_transformers_verbosity_wins():
    assert "library chatter" in _run(0, TRANSFORMERS_VERBOSITY="warning")


def test_a_child_of_a_quiet_run_still_shows_warnings_with_v():
    """The variable a parent command set is ours, not the user's: a -v child follows -v."""
    assert "library chatter" in _run(1, TRANSFORMERS_VERBOSITY="error", RLHF_ASR_SET_VERBOSITY="TRANSFORMERS_VERBOSITY")
