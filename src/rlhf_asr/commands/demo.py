"""`rlhf-asr demo`: offline end-to-end run on synthesized speech with the bundled Whisper tiny.en.

Synthesizes utterances with espeak-ng, mines preference pairs from the base model's own mistakes,
fine-tunes with ORPO, and reports held-out WER before and after (report.md, metrics.json, plots).
"""

from __future__ import annotations

# Names shared across commands (README: "Command line"); the study's older field names stay accepted.
NAMES = {"num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size"}


def build_parser():
    from rlhf_asr.commands.parser import options_parser
    from rlhf_asr.studies.options import DemoOptions

    return options_parser(
        "rlhf-asr demo", [DemoOptions], __doc__.splitlines()[0], names=NAMES, older=DemoOptions.older_names
    )


def parse_args(argv: list[str]):
    from rlhf_asr.commands.parser import parse_options

    return parse_options(build_parser(), argv)[0]


def check_counts(options) -> None:
    from rlhf_asr.errors import UserInputError

    if options.num_train < 1 or options.num_test < 1:
        raise UserInputError("--num_train and --num_test must be at least 1")


def main(argv: list[str]) -> int:
    from rlhf_asr.data.synth_audio import INSTALL_HINT, espeak_available
    from rlhf_asr.errors import UserInputError

    options = parse_args(argv)  # first: `--help` must not wait for torch
    check_counts(options)
    if not espeak_available():
        raise UserInputError(INSTALL_HINT)
    from rlhf_asr.studies.demo.run import run_demo

    run_demo(options)
    return 0
