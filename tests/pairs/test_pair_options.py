"""MiningOptions (pairs/options.py): make-pairs' options stated once, for the command, the Python
API and `mine_pairs`; checked where an object is made, in the command's words; torch-free."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import textwrap

import pytest

from rlhf_asr.errors import UserInputError
from rlhf_asr.pairs.options import DEFAULTS, NEGATIVES, OPTION_NAMES, STRATEGIES, MiningOptions

BASE = ["--model", "m", "--data", "d.jsonl", "--output", "o.jsonl"]


def test_the_options_and_the_package_load_without_torch():
    """make-pairs' --help imports the options module: neither it nor the package's names may pull torch in."""
    code = textwrap.dedent("""
        import sys
        from rlhf_asr.pairs.options import MiningOptions
        import rlhf_asr.pairs
        MiningOptions(num_candidates=2, strategy="sample")
        assert rlhf_asr.pairs.STRATEGIES == ("beam", "sample")
        heavy = sorted(name for name in ("torch", "transformers") if name in sys.modules)
        sys.exit(f"imported {heavy}" if heavy else 0)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]


def test_the_commands_options_are_the_mining_options():
    from rlhf_asr.commands.make_pairs import MakePairsOptions, build_parser, parse_args

    assert issubclass(MakePairsOptions, MiningOptions)
    choices = {action.dest: tuple(action.choices or ()) for action in build_parser()._actions}
    assert choices["strategy"] == STRATEGIES == ("beam", "sample")
    assert choices["negative"] == NEGATIVES == ("hardest", "worst", "random")
    parsed = parse_args(BASE)
    assert {name: getattr(parsed, name) for name in OPTION_NAMES} == vars(DEFAULTS)


def test_the_api_takes_every_mining_option_with_its_default():
    from rlhf_asr.api import make_pairs

    parameters = inspect.signature(make_pairs).parameters
    assert {name: parameters[name].default for name in OPTION_NAMES} == vars(DEFAULTS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_candidates": 0}, "--num_candidates 0: must be at least 1"),
        ({"batch_size": -1}, "--batch_size -1: must be at least 1"),
        ({"temperature": float("nan")}, "--temperature nan: must be a finite number above 0"),
        ({"strategy": "greedy"}, "--strategy 'greedy': must be one of beam, sample"),
        ({"negative": "easiest"}, "--negative 'easiest': must be one of hardest, worst, random"),
        ({"pad_silence": 31.0}, "--pad_silence must be 0-30 seconds, not 31.0"),
        ({"generate_nonspeech": -1}, "--generate_nonspeech must be a whole number >= 0, not -1"),
    ],
)
def test_options_are_checked_where_made_in_the_commands_words(change, message, tmp_path):
    from rlhf_asr.pairs import mine_pairs

    for make in (
        lambda: MiningOptions(**change),
        lambda: dataclasses.replace(MiningOptions(), **change),
        lambda: mine_pairs(None, None, tmp_path / "none.jsonl", tmp_path / "p.jsonl", **change),  # before any reading
    ):
        with pytest.raises(UserInputError) as caught:
            make()
        assert str(caught.value) == message
    assert not (tmp_path / "p.jsonl").exists()


def test_the_decoders_options():
    assert MiningOptions().decoding() == dict(
        num_beams=4, num_return_sequences=4, do_sample=False, temperature=None, score=True
    )
    assert MiningOptions(num_candidates=3, strategy="sample", temperature=0.5).decoding() == dict(
        num_beams=1, num_return_sequences=3, do_sample=True, temperature=0.5, score=True
    )
