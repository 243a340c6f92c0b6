"""`rlhf-asr train` (and `python finetune.py`): parse options, run the training recipe.

Options are the fields of ModelArguments, DataArguments and ORPOConfig (every Hugging Face
TrainingArguments option included). `--config FILE.yaml|json` supplies options from a file;
options given on the command line win.
"""

from __future__ import annotations


def parse_args(argv: list[str]):
    """(ModelArguments, DataArguments, ORPOConfig); any parsing error is one UserInputError line."""
    from rlhf_asr.trainer.config import parse_training_args

    return parse_training_args(argv)


def main(argv: list[str]) -> int:
    model_args, data_args, config = parse_args(argv)
    from rlhf_asr.recipes.train import run_training

    run_training(model_args, data_args, config)
    return 0
