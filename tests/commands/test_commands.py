"""The command line's one style: dataclass options, booleans as `--x True`, one name per concept, fast --help."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from rlhf_asr.commands.cli import COMMANDS
from rlhf_asr.commands.cli import main as cli_main

MODULES = {name: f"rlhf_asr.commands.{module}" for name, (module, _) in COMMANDS.items()}
# Minimal valid command lines, so a test can vary one option.
BASE = {
    "train": ["--train_data", "t.jsonl"],
    "evaluate": ["--model", "m", "--data", "d.jsonl", "--output", "o.json"],
    "transcribe": ["--model", "m", "a.wav"],
    "merge": ["a", "b"],
    "import-ct2": ["tiny.en", "dst"],
    "make-pairs": ["--model", "m", "--data", "d.jsonl", "--output", "o.jsonl"],
    "bench": [],
    "demo": [],
    "results": [],
}


def parse(command: str, *argv: str):
    return importlib.import_module(MODULES[command]).parse_args([*BASE[command], *argv])


BOOLEANS = [
    ("evaluate", "skip_invalid_rows"),
    ("make-pairs", "corrupt_correct"),
    ("make-pairs", "skip_invalid_rows"),
    ("bench", "sweep"),
    ("bench", "exact_cpu_peak"),
    ("bench", "checkpoint_decoder"),
]


@pytest.mark.parametrize("command, name", BOOLEANS)
def test_booleans_take_true_false_or_a_bare_flag_with_dashes_or_underscores(command, name):
    dashed = "--" + name.replace("_", "-")
    assert getattr(parse(command, f"--{name}", "True"), name) is True
    assert getattr(parse(command, f"--{name}", "False"), name) is False
    assert getattr(parse(command, f"--{name}"), name) is True
    assert getattr(parse(command, dashed, "yes"), name) is True
    assert getattr(parse(command), name) is False


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_defaults(command, capsys):
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(MODULES[command]).parse_args(["--help"])
    assert exited.value.code == 0
    assert "(default: " in capsys.readouterr().out


LIGHT = [name for name in COMMANDS if name != "train"]  # train's options subclass TrainingArguments (torch)

_TRAIN_HELP = """
import sys
from rlhf_asr.commands import train
try:
    train.parse_args(["--model", "m", "--help"])
except SystemExit as exited:
    assert exited.code == 0
sys.stderr.write("torch imported" if "torch" in sys.modules else "torch not imported")
"""


def test_train_help_is_the_parsers_own_text_and_the_second_one_skips_torch(tmp_path):
    """The first `train --help` builds the text (importing torch); the next one prints the cached
    text without importing torch, and both equal what the live parser prints."""
    env = {**os.environ, "RLHF_ASR_CACHE": str(tmp_path), "COLUMNS": "100"}
    run = [sys.executable, "-c", _TRAIN_HELP]
    first = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    second = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    live = subprocess.run(
        [
            sys.executable,
            "-c",
            "from rlhf_asr.commands import train as t; print(t.build_parser().format_help(), end='')",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert first.stderr == "torch imported" and second.stderr == "torch not imported", (first.stderr, second.stderr)
    assert first.stdout == second.stdout == live.stdout
    assert "--per_device_train_batch_size" in second.stdout and "(default: " in second.stdout


def test_train_help_key_changes_with_the_sources_and_the_width(tmp_path, monkeypatch):
    from rlhf_asr.commands.help_cache import help_key
    from rlhf_asr.commands.train import HELP_SOURCES

    copies = []
    for source in HELP_SOURCES:
        copies.append(tmp_path / source.name)
        copies[-1].write_bytes(source.read_bytes())
    monkeypatch.setenv("COLUMNS", "100")
    before = help_key(copies)
    assert help_key(HELP_SOURCES) == before  # same text, same key
    copies[2].write_text(copies[2].read_text() + "\n# a new option\n")
    assert help_key(copies) != before
    monkeypatch.setenv("COLUMNS", "80")
    assert help_key(HELP_SOURCES) != before


@pytest.mark.parametrize("command", LIGHT)
def test_help_does_not_import_torch(command):
    """`rlhf-asr COMMAND --help` in a fresh process leaves torch unimported: no 5 s wait for a usage text."""
    code = textwrap.dedent(f"""
        import sys
        from rlhf_asr.commands.cli import main
        try:
            main([{command!r}, "--help"])
        except SystemExit:
            pass
        heavy = sorted(name for name in ("torch", "transformers") if name in sys.modules)
        sys.exit(f"imported {{heavy}}" if heavy else 0)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]


def test_hf_argparser_loaded_alone_parses_as_transformers_does():
    """The fast path (transformers/hf_argparser.py without its package) is transformers' own parser."""
    from transformers import HfArgumentParser

    from rlhf_asr.commands.evaluate import EvaluateOptions
    from rlhf_asr.commands.parser import load_hf_argparser_alone

    alone = load_hf_argparser_alone()
    assert alone is not HfArgumentParser and alone.__name__ == "HfArgumentParser"
    argv = ["--model", "m", "--data", "d", "--output", "o", "--skip-invalid-rows", "--num_beams", "3"]
    ours = alone([EvaluateOptions]).parse_args_into_dataclasses(argv, look_for_args_file=False)
    theirs = HfArgumentParser([EvaluateOptions]).parse_args_into_dataclasses(argv, look_for_args_file=False)
    assert ours == theirs and ours[0].skip_invalid_rows and ours[0].num_beams == 3


# ---- one name for one thing ----


def _dests(command: str) -> dict[str, str]:
    parser = importlib.import_module(MODULES[command]).build_parser()
    return {spelling: action.dest for action in parser._actions for spelling in action.option_strings}


# concept name -> commands that have it; aliases: older spellings accepted for the same option
NAMES = {
    "--model": ["train", "evaluate", "transcribe", "make-pairs", "bench", "demo"],
    "--data": ["train", "evaluate", "make-pairs"],
    "--output_dir": ["train", "merge", "import-ct2", "demo", "results"],
    "--output": ["evaluate", "make-pairs", "bench"],
    "--num_train_epochs": ["train", "demo", "results"],
    "--per_device_train_batch_size": ["train", "bench", "demo", "results"],
    "--batch_size": ["evaluate", "transcribe", "make-pairs"],
    "--peft": ["train", "bench"],
}
ALIASES = {
    "train": {"--base_model": "--model", "--train_data": "--data"},
    "demo": {"--epochs": "--num_train_epochs", "--batch_size": "--per_device_train_batch_size"},
    "results": {"--epochs": "--num_train_epochs", "--batch_size": "--per_device_train_batch_size"},
    "bench": {"--batch_size": "--per_device_train_batch_size"},
}


@pytest.mark.parametrize("name", NAMES)
def test_one_name_for_one_concept_across_commands(name):
    for command in NAMES[name]:
        assert name in _dests(command), (command, name)


@pytest.mark.parametrize("command", ALIASES)
def test_older_spellings_are_aliases_of_the_same_option(command):
    dests = _dests(command)
    for alias, name in ALIASES[command].items():
        assert dests[alias] == dests[name], (command, alias)
        assert dests[alias.replace("_", "-")] == dests[name]


def test_classic_finetune_flags_and_new_names_give_the_same_training_run():
    from rlhf_asr.commands.train import parse_args

    classic = parse_args(["--base_model", "m", "--train_data", "t.jsonl", "--num_train_epochs", "2"])
    new = parse_args(["--model", "m", "--data", "t.jsonl", "--num-train-epochs", "2"])
    assert classic[0] == new[0] and classic[1] == new[1]
    assert classic[2].num_train_epochs == new[2].num_train_epochs == 2


@pytest.mark.parametrize(
    "argv, method",
    [
        (["--use_adalora"], "adalora"),
        (["--use_adalora", "True"], "adalora"),
        (["--use_adalora", "False"], "lora"),
        (["--peft", "lora", "--use_adalora"], "adalora"),  # the same option given twice: the last wins
        (["--use_adalora", "--peft", "none"], "none"),
        ([], "lora"),
    ],
)
def test_use_adalora_is_an_alias_of_peft(argv, method):
    from rlhf_asr.commands.train import parse_args

    model_args = parse_args(["--train_data", "t.jsonl", *argv])[0]
    assert model_args.peft_method == method
    assert model_args.peft == (None if not argv else method)


@pytest.mark.parametrize(
    "argv, compiled",
    [
        (["--use_compile"], True),
        (["--use_compile", "True"], True),
        (["--torch_compile", "--use_compile", "False"], False),
        ([], False),
    ],
)
def test_use_compile_is_an_alias_of_torch_compile(argv, compiled):
    from rlhf_asr.commands.train import parse_args

    assert parse_args(["--train_data", "t.jsonl", "--report_to", "none", *argv])[2].torch_compile is compiled


def test_no_plot_help_is_not_inverted(capsys):
    from rlhf_asr.commands.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    no_plot = help_text[help_text.index("--no_plot, --no-plot") :][:120]
    assert "same as --plot False" in no_plot and "Write training_curves" not in no_plot


# ---- positional forms ----


def test_merge_takes_options_or_the_older_positional_form():
    from rlhf_asr.commands.merge import parse_args

    assert parse_args(["a", "b"]) == parse_args(["--adapter_dir", "a", "--output_dir", "b"])


def test_import_ct2_takes_options_or_the_older_positional_form():
    from rlhf_asr.commands.import_ct2 import parse_args

    positional = parse_args(["x/model.bin.part0", "x/model.bin.part1", "dst"])
    assert positional == parse_args(["--source", "x/model.bin.part0", "x/model.bin.part1", "--output_dir", "dst"])
    assert positional.source == ["x/model.bin.part0", "x/model.bin.part1"] and positional.output_dir == "dst"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["merge", "a"], "--output_dir"),
        (["merge", "a", "b", "--output_dir", "c"], "--output_dir"),
        (["import-ct2", "--source", "x"], "--output_dir"),
        (["transcribe", "--model", "m"], "audio"),
    ],
)
def test_missing_or_doubled_paths_are_one_line(argv, needle, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_list_options_take_spaces_or_commas():
    assert parse("demo", "--speeds", "200,220").speeds == [200, 220]
    assert parse("demo", "--speeds", "200", "220").speeds == [200, 220]
    assert parse("demo", "--test_voices", "").test_voices == []
    assert parse("demo", "--train_voices", "en-us,en-gb").train_voices == ["en-us", "en-gb"]


def test_results_files_follow_the_output_dir_unless_given():
    options = parse("results", "--output_dir", "elsewhere")[0]
    assert (options.report_path, options.raw_path) == ("elsewhere/results.md", "elsewhere/raw.json")
    assert parse("results", "--output_dir", "x", "--report", "r.md")[0].report_path == "r.md"
    assert parse("results", "--seeds", "3", "4,5")[0].seeds == [3, 4, 5]


# ---- options defined apart from the library stay equal to it ----
# (make-pairs' mining options are the library's own: tests/pairs/test_pair_options.py)


def test_bench_options_match_the_per_mode_process():
    """`rlhf-asr bench` passes its options to `python -m rlhf_asr.studies.bench.run`: same names, defaults, choices."""
    import argparse

    from rlhf_asr.commands.bench import MODES as COMMAND_MODES
    from rlhf_asr.commands.bench import parse_args, to_namespace
    from rlhf_asr.studies.bench.run import MODES, add_common_args

    child = argparse.ArgumentParser()
    add_common_args(child)
    expected = vars(child.parse_args([]))
    got = vars(to_namespace(parse_args([])))
    for key in set(expected) - {"device", "threads", "steps", "warmup"}:  # those four: resolved by the command
        assert got[key] == expected[key], key
    assert COMMAND_MODES == MODES


# ---- logging ----


@pytest.mark.parametrize(
    "argv, level",
    [
        (["--quiet", "merge", "a", "b"], logging.WARNING),
        (["merge", "a", "b", "--quiet"], logging.WARNING),
        (["-v", "merge", "a", "b"], logging.DEBUG),
        (["merge", "a", "b"], logging.INFO),
    ],
)
def test_quiet_and_verbose_before_or_after_the_command(argv, level, monkeypatch, capsys):
    from rlhf_asr.model import merge

    monkeypatch.setattr(merge, "merge_adapter", lambda adapter, output: output)
    assert cli_main(argv) == 0
    assert logging.getLogger("rlhf_asr").level == level
    captured = capsys.readouterr()
    assert captured.out == ""  # the note is a log line on stderr, not a product on stdout
    assert ("merged model written to b" in captured.err) == (level <= logging.INFO)


def test_transcribe_takes_files_and_options_in_any_order():
    from rlhf_asr.commands.transcribe import parse_args

    expected = parse_args(["--model", "m", "a.wav", "b.wav"])
    assert parse_args(["a.wav", "--model", "m", "b.wav"]) == expected and expected.audio == ["a.wav", "b.wav"]
