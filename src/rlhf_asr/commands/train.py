"""`rlhf-asr train` (and `python finetune.py`): parse options, run the training recipe.

Options are the fields of ModelArguments, DataArguments and PreferenceConfig (every Hugging Face
TrainingArguments option included; `--loss` and the objective weights among them).
`--config FILE.yaml|json` supplies options from a file; options given on the command line win.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlhf_asr.commands.help_cache import cached_help, wants_help
from rlhf_asr.errors import UserInputError
from rlhf_asr.trainer.config_file import config_path, split_config_flag

# Names shared with the other commands (README: "Command line"); the classic finetune.py
# flags (--base_model, --train_data) stay the fields' own names and keep working.
NAMES = {"model": "base_model", "data": "train_data"}

_PACKAGE = Path(__file__).resolve().parents[1]
# The modules whose text decides the help: a change to any of them builds it afresh.
HELP_SOURCES = [
    _PACKAGE / "commands" / "train.py",
    _PACKAGE / "commands" / "parser.py",
    _PACKAGE / "trainer" / "config.py",
    _PACKAGE / "trainer" / "config_file.py",
    _PACKAGE / "data" / "options.py",  # the dataset options DataArguments shares with evaluate and make-pairs
    _PACKAGE / "trainer" / "objective_options.py",  # --loss's choices and the weights' help
    _PACKAGE / "data" / "nospeech_target.py",  # the choices of --nospeech_target
    *sorted((_PACKAGE / "loss" / "objectives").glob("*.py")),  # the objectives' weights and their help
]


def build_parser():
    """ModelArguments, DataArguments and PreferenceConfig as one parser, with the cross-command names."""
    from rlhf_asr.commands.parser import options_parser, redirect
    from rlhf_asr.trainer.config import DataArguments, ModelArguments, PreferenceConfig

    parser = options_parser(
        "rlhf-asr train",
        [ModelArguments, DataArguments, PreferenceConfig],
        __doc__.splitlines()[0],
        names=NAMES,
        older=PreferenceConfig.older_names,  # e.g. --disable_prompt_loss, now --completion_only_loss
    )
    # Duplicate switches become aliases: one option decides, and the last one given wins.
    redirect(
        parser,
        "--use_adalora",
        "peft",
        value=lambda on: "adalora" if on else "lora",
        help="alias: --use_adalora [True] = --peft adalora, --use_adalora False = --peft lora",
    )
    redirect(parser, "--use_compile", "torch_compile", help="alias of --torch_compile")
    # TRL's CPOConfig spelling of SimPO's margin; the option keeps the objective's own name, --gamma.
    parser.add_argument("--simpo_gamma", dest="gamma", type=float, default=argparse.SUPPRESS, help="alias of --gamma")
    return parser


def parse_args(argv: list[str]):
    """(ModelArguments, DataArguments, PreferenceConfig); any parsing error is one UserInputError line."""
    from rlhf_asr.commands.parser import parse_options

    if wants_help(argv):
        # Served from the cache without importing torch (commands/help_cache.py says why).
        sys.stdout.write(cached_help("train", HELP_SOURCES, lambda: build_parser().format_help()))
        raise SystemExit(0)
    parser = build_parser()
    args = split_config_flag(argv)
    namespace, unknown = parser.parse_known_args(args=args)
    if unknown:
        options = [item for item in unknown if item.startswith("-")] or unknown
        source = f" (from --config {config_path(argv)} or the command line)" if config_path(argv) else ""
        raise UserInputError(
            f"unknown option(s) {' '.join(options)}{source}; `rlhf-asr train --help` lists the options"
        )
    # TrainingArguments checks many combinations in __post_init__ and raises ValueError: one line.
    return parse_options(parser, args)[:3]


def main(argv: list[str]) -> int:
    model_args, data_args, config = parse_args(argv)
    from rlhf_asr.trainer.run import run_training

    run_training(model_args, data_args, config)
    return 0
