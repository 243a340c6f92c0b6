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
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as error:  # noqa: BLE001 - any parse error is the user's file
        raise UserInputError(f"--config {path}: cannot parse ({error})") from None
    if not isinstance(values, dict):
        raise UserInputError(f"--config {path}: expected a mapping of option names to values")
    args: list[str] = []
    for key, value in values.items():
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


def parse_args(argv: list[str]):
    from transformers import HfArgumentParser

    from rlhf_asr.trainer.config import DataArguments, ModelArguments, ORPOConfig

    parser = HfArgumentParser((ModelArguments, DataArguments, ORPOConfig))
    parser.prog = "rlhf-asr train"
    return parser.parse_args_into_dataclasses(args=split_config_flag(argv))


def main(argv: list[str]) -> int:
    model_args, data_args, config = parse_args(argv)
    from rlhf_asr.recipes.train import run_training

    run_training(model_args, data_args, config)
    return 0
