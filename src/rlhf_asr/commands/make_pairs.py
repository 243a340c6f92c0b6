"""`rlhf-asr make-pairs`: mine preference pairs from an ASR manifest with a model's own mistakes."""

from __future__ import annotations

import argparse

from rlhf_asr.commands.parser import CommandParser, positive_float, positive_int

from rlhf_asr.pairs import NEGATIVES, STRATEGIES


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="rlhf-asr make-pairs", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model/merged/adapter folder, hub id, or tiny.en/base (bundled)")
    parser.add_argument("--data", required=True, help="ASR manifest: audio, duration, sentence[, language]")
    parser.add_argument("--output", required=True, help="preference manifest to write (JSON lines; resumed if present)")
    parser.add_argument("--language", default=None, help="language of all rows (default: each row's, else detected)")
    parser.add_argument("--num_candidates", type=positive_int, default=4, help="candidates decoded per utterance")
    parser.add_argument("--strategy", choices=STRATEGIES, default="beam", help="n-best beam search or sampling")
    parser.add_argument("--temperature", type=positive_float, default=0.7, help="sampling temperature (--strategy sample)")
    parser.add_argument(
        "--negative", choices=NEGATIVES, default="hardest",
        help="rejected = most probable wrong candidate (hardest), highest-WER one (worst), or any (random)",
    )
    parser.add_argument("--corrupt_correct", action="store_true", help="corrupt the reference where the model is right")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=positive_int, default=8)
    parser.add_argument("--no_resume", action="store_true", help="start the output afresh instead of resuming")
    parser.add_argument("--skip_invalid_rows", action="store_true", help="skip (and count) invalid manifest rows")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: as saved)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")  # a truncated weights file: one line, before loading
    from rlhf_asr.model.loading import default_device, load_for_inference
    from rlhf_asr.pairs import mine_pairs

    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    summary = mine_pairs(
        model, processor, args.data, args.output, num_candidates=args.num_candidates, strategy=args.strategy,
        temperature=args.temperature, negative=args.negative, corrupt_correct=args.corrupt_correct, seed=args.seed,
        batch_size=args.batch_size, language=args.language, resume=not args.no_resume, model_name=args.model,
        skip_invalid=args.skip_invalid_rows,
    )
    print(
        f"{summary['written']} pairs written to {summary['output']} ({summary['corrupted']} by corruption); "
        f"{summary['skipped_correct']} already correct, {summary['skipped_empty']} without a usable candidate, "
        f"{summary['errors']} unreadable, {summary['already_done']} done in an earlier run"
    )
    return 0
