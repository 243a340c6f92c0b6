"""`rlhf-asr evaluate`: WER/CER (and preference accuracy) of a model on a manifest.

Writes metrics.json to --output and utterances.csv beside it, and prints a short table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlhf_asr.commands.parser import CommandParser, positive_int
from rlhf_asr.errors import UserInputError


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="rlhf-asr evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model/merged/adapter folder, hub id, or tiny.en/base (bundled)")
    parser.add_argument("--data", required=True, help="ASR (sentence) or preference (chosen/rejected) manifest")
    parser.add_argument("--output", required=True, help="metrics JSON path; utterances.csv goes beside it")
    parser.add_argument("--language", default=None, help="language of all rows (default: each row's, else detected)")
    parser.add_argument("--num_beams", type=positive_int, default=1)
    parser.add_argument("--batch_size", type=positive_int, default=8)
    parser.add_argument("--max_rows", type=positive_int, default=None, help="evaluate only the first N rows (default: all)")
    parser.add_argument("--skip_invalid_rows", action="store_true", help="skip (and count) invalid manifest rows")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: as saved)")
    return parser


def format_table(metrics: dict) -> str:
    def fmt(value, percent=False):
        if value is None:
            return "-"
        return f"{100 * value:.2f}%" if percent else (f"{value:.3f}" if isinstance(value, float) else str(value))

    rows = [
        ("utterances", fmt(metrics["num_utterances"])),
        ("WER", fmt(metrics["wer"], True)),
        ("CER", fmt(metrics["cer"], True)),
        ("preference accuracy", fmt(metrics["preference_accuracy"], True)),
        ("audio seconds", fmt(metrics["audio_seconds"])),
        ("RTF", fmt(metrics["rtf"])),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def check_output(path: str) -> Path:
    """--output must be writable as a file; checked before decoding, which may take hours."""
    output = Path(path).expanduser()
    if output.is_dir():
        raise UserInputError(f"--output {path}: is a folder; give a file path such as {output / 'metrics.json'}")
    for parent in (output.parent, *output.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UserInputError(f"--output {path}: {parent} is a file, not a folder")
            break
    if (output.parent / "utterances.csv").is_dir():
        raise UserInputError(f"--output {path}: {output.parent / 'utterances.csv'} is a folder")
    return output


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    output = check_output(args.output)
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")  # a truncated weights file: one line, before loading
    from rlhf_asr.evaluation.evaluate import evaluate_manifest
    from rlhf_asr.model.loading import default_device, load_for_inference

    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    metrics = evaluate_manifest(
        model, processor, args.data, language=args.language, num_beams=args.num_beams, batch_size=args.batch_size,
        output_dir=output.parent, metrics_name=output.name, max_rows=args.max_rows, model_name=args.model,
        skip_invalid=args.skip_invalid_rows,
    )
    print(format_table(metrics))
    print(f"wrote {output} and {output.parent / 'utterances.csv'}")
    return 0
