"""`rlhf-asr results`: base vs SFT vs ORPO (both rejected scopes) over seeds; raw.json and the report (results_output/)."""

from __future__ import annotations

import argparse


def main(argv: list[str]) -> int:
    from rlhf_asr.demo.corpus import INSTALL_HINT, espeak_available
    from rlhf_asr.errors import UserInputError
    from rlhf_asr.recipes.results import VARIANTS, ResultsOptions, regenerate, run_results

    defaults = ResultsOptions()
    parser = argparse.ArgumentParser(prog="rlhf-asr results", description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=defaults.output_dir)
    parser.add_argument("--report", default=None, help="markdown report to write (default: OUTPUT_DIR/results.md)")
    parser.add_argument("--raw", default=None, help="raw per-run results to write (default: OUTPUT_DIR/raw.json)")
    parser.add_argument("--from_raw", default=None,
                        help="only render --report from this raw.json (e.g. docs/results/raw.json): no training")
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=defaults.variants)
    parser.add_argument("--num_train", type=int, default=defaults.num_train)
    parser.add_argument("--num_test", type=int, default=defaults.num_test)
    parser.add_argument("--epochs", type=float, default=defaults.epochs, help="sets the equal step count of every run")
    args = parser.parse_args(argv)
    args.report = args.report or f"{args.output_dir}/results.md"
    args.raw = args.raw or f"{args.output_dir}/raw.json"
    if args.from_raw:
        regenerate(args.from_raw, args.report)
        print(f"[results] wrote {args.report} from {args.from_raw}")
        return 0
    if not espeak_available():
        raise UserInputError(INSTALL_HINT)
    options = ResultsOptions(
        output_dir=args.output_dir, report_path=args.report, raw_path=args.raw, seeds=args.seeds, variants=args.variants,
        num_train=args.num_train, num_test=args.num_test, epochs=args.epochs,
    )
    run_results(options)
    return 0
