"""`rlhf-asr train` (and `python finetune.py`): parse options, run the training recipe.

Options are the fields of ModelArguments, DataArguments and ORPOConfig (every Hugging Face
TrainingArguments option included). `--config FILE.yaml|json` supplies options from a file;
options given on the command line win.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_asr.errors import UserInputError


def config_file_args(path: str) -> list[str]:
    """A YAML/JSON mapping of option -> value, as command-line arguments."""
    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"--config {path}: file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserInputError(f"--config {path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise UserInputError(f"--config {path}: cannot read ({error.strerror or error})") from None
    try:
        if file.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as error:  # any parse error is the user's file
        raise UserInputError(f"--config {path}: cannot parse ({error})") from None
    if not isinstance(values, dict):
        raise UserInputError(f"--config {path}: expected a mapping of option names to values")
    args: list[str] = []
    for key, value in values.items():
        if not isinstance(key, str) or not key.strip() or key.startswith("-"):
            raise UserInputError(f"--config {path}: {key!r} is not an option name (write e.g. learning_rate: 1e-4)")
        items = value if isinstance(value, list) else [value]
        args += [f"--{key}", *[str(item) for item in items]]
    return args


def split_config_flag(argv: list[str]) -> list[str]:
    """Expands `--config FILE` in place; later (command-line) options override the file's."""
    if "--config" not in argv:
        return argv
    at = argv.index("--config")
    if at + 1 >= len(argv):
        raise UserInputError("--config needs a file path")
    return config_file_args(argv[at + 1]) + argv[:at] + argv[at + 2 :]


def config_path(argv: list[str]) -> str | None:
    at = argv.index("--config") if "--config" in argv else -1
    return argv[at + 1] if 0 <= at < len(argv) - 1 else None


# Names shared with the other commands (README: "Command line"); the classic finetune.py
# flags (--base_model, --train_data) stay the fields' own names and keep working.
NAMES = {"model": "base_model", "data": "train_data"}


def build_parser():
    """ModelArguments, DataArguments and ORPOConfig as one parser, with the cross-command names."""
    from rlhf_asr.commands.parser import options_parser, redirect
    from rlhf_asr.trainer.config import DataArguments, ModelArguments, ORPOConfig

    parser = options_parser("rlhf-asr train", [ModelArguments, DataArguments, ORPOConfig], __doc__.splitlines()[0],
                            names=NAMES)
    # Duplicate switches become aliases: one option decides, and the last one given wins.
    redirect(parser, "--use_adalora", "peft", value=lambda on: "adalora" if on else "lora",
             help="alias: --use_adalora [True] = --peft adalora, --use_adalora False = --peft lora")
    redirect(parser, "--use_compile", "torch_compile", help="alias of --torch_compile")
    return parser


def parse_args(argv: list[str]):
    """(ModelArguments, DataArguments, ORPOConfig); any parsing error is one UserInputError line."""
    from rlhf_asr.commands.parser import parse_options

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
    from rlhf_asr.recipes.train import run_training

    run_training(model_args, data_args, config)
    return 0
