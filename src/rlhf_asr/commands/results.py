"""`rlhf-asr results`: base vs SFT vs ORPO (both rejected scopes) over seeds; writes docs/results.md."""

from __future__ import annotations

import argparse


def main(argv: list[str]) -> int:
    from rlhf_asr.data.synth import INSTALL_HINT, espeak_available
    from rlhf_asr.errors import UserInputError
    from rlhf_asr.recipes.results import VARIANTS, ResultsOptions, run_results

    defaults = ResultsOptions()
    parser = argparse.ArgumentParser(prog="rlhf-asr results", description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=defaults.output_dir)
    parser.add_argument("--report", default=defaults.report_path, help="markdown report to write")
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=defaults.variants)
    parser.add_argument("--num_train", type=int, default=defaults.num_train)
    parser.add_argument("--num_test", type=int, default=defaults.num_test)
    parser.add_argument("--epochs", type=float, default=defaults.epochs, help="sets the equal step count of every run")
    args = parser.parse_args(argv)
    if not espeak_available():
        raise UserInputError(INSTALL_HINT)
    options = ResultsOptions(
        output_dir=args.output_dir, report_path=args.report, seeds=args.seeds, variants=args.variants,
        num_train=args.num_train, num_test=args.num_test, epochs=args.epochs,
    )
    run_results(options)
    return 0
