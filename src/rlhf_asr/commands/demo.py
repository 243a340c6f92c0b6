"""`rlhf-asr demo`: offline end-to-end run on synthesized speech with the bundled Whisper tiny.en.

Synthesizes utterances with espeak-ng, mines preference pairs from the base model's own mistakes,
fine-tunes with ORPO, and reports held-out WER before and after (report.md, metrics.json, plots).
"""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    from rlhf_asr.recipes.demo import HELD_OUT_VOICES, SPEEDS, TRAIN_VOICES, DemoOptions

    defaults = DemoOptions()
    parser = argparse.ArgumentParser(prog="rlhf-asr demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=defaults.output_dir, help="where corpus, model and report go")
    parser.add_argument("--num_train", type=int, default=defaults.num_train, help="training utterances (texts)")
    parser.add_argument("--num_test", type=int, default=defaults.num_test,
                        help="held-out texts; each is spoken by a training voice and by a held-out voice")
    parser.add_argument("--epochs", type=float, default=defaults.epochs)
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
    parser.add_argument("--lora_r", type=int, default=defaults.lora_r)
    parser.add_argument("--alpha", type=float, default=defaults.alpha, help="weight of ORPO's odds-ratio term")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="texts, voices and training")
    parser.add_argument("--model", default=defaults.model, help="tiny.en (bundled) or a local Whisper folder")
    parser.add_argument("--train_voices", default=",".join(TRAIN_VOICES), help="espeak-ng voices, comma-separated")
    parser.add_argument("--test_voices", default=",".join(HELD_OUT_VOICES),
                        help="held-out espeak-ng voices, comma-separated ('' for none)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for every stage (default 0: one thread, and one encoder worker per core)")
    parser.add_argument("--speeds", default=",".join(map(str, SPEEDS)), help="speaking rates, words per minute")
    return parser


def _names(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: list[str]) -> int:
    from rlhf_asr.demo.corpus import INSTALL_HINT, espeak_available
    from rlhf_asr.errors import UserInputError
    from rlhf_asr.recipes.demo import DemoOptions, run_demo

    args = build_parser().parse_args(argv)
    if not espeak_available():
        raise UserInputError(INSTALL_HINT)
    if args.num_train < 1 or args.num_test < 1:
        raise UserInputError("--num_train and --num_test must be at least 1")
    options = DemoOptions(
        output_dir=args.output_dir, num_train=args.num_train, num_test=args.num_test, epochs=args.epochs,
        learning_rate=args.learning_rate, batch_size=args.batch_size, lora_r=args.lora_r, alpha=args.alpha,
        seed=args.seed, model=args.model, train_voices=_names(args.train_voices), test_voices=_names(args.test_voices),
        speeds=[int(speed) for speed in _names(args.speeds)], threads=args.threads,
    )
    run_demo(options)
    return 0
