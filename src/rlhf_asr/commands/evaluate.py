"""`rlhf-asr evaluate`: WER/CER (and preference accuracy) of a model on a manifest.

Writes metrics.json to --output and utterances.csv beside it, and prints a short table (stdout).
No-speech rows ("" transcripts) give the hallucination rate; WER/CER cover the speech rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_asr.commands.parser import check_positive, options_parser, parse_options
from rlhf_asr.errors import UserInputError

log = logging.getLogger(__name__)
MODEL_HELP = "model/merged/adapter folder, hub id, or tiny.en/base (bundled)"


@dataclass(frozen=True)
class EvaluateOptions:
    model: str = field(metadata={"help": MODEL_HELP})
    data: str = field(metadata={"help": "ASR (sentence) or preference (chosen/rejected) manifest"})
    output: str = field(metadata={"help": "metrics JSON path; utterances.csv goes beside it"})
    language: str | None = field(
        default=None, metadata={"help": "language of all rows (None: each row's, else detected)"}
    )
    num_beams: int | None = field(
        default=None, metadata={"help": "beam width; None: the model's generation config (1 if unset)"}
    )
    batch_size: int = field(default=8, metadata={"help": "utterances decoded at once"})
    max_rows: int | None = field(default=None, metadata={"help": "evaluate only the first N rows (None: all)"})
    skip_invalid_rows: bool = field(default=False, metadata={"help": "skip (and count) invalid manifest rows"})
    device: str | None = field(default=None, metadata={"help": "None: cuda when available, else cpu"})
    dtype: str | None = field(default=None, metadata={"help": "float32, float16 or bfloat16 (None: as saved)"})

    def __post_init__(self):
        check_positive(self, "num_beams", "batch_size", "max_rows")


def build_parser():
    return options_parser("rlhf-asr evaluate", [EvaluateOptions], __doc__.splitlines()[0])


def parse_args(argv: list[str]) -> EvaluateOptions:
    return parse_options(build_parser(), argv)[0]


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
        ("speech rows", fmt(metrics.get("rows_speech"))),
        ("no-speech rows", fmt(metrics.get("rows_no_speech"))),
        ("hallucination rate", fmt(metrics.get("hallucination_rate"), True)),
        ("insertion rate", fmt(metrics.get("insertion_rate"), True)),
        ("repetition rate", fmt(metrics.get("repetition_rate"), True)),
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
    args = parse_args(argv)
    output = check_output(args.output)
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")  # a truncated weights file: one line, before loading
    from rlhf_asr.evaluation.evaluate import evaluate_manifest
    from rlhf_asr.model.loading import default_device, load_for_inference

    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    metrics = evaluate_manifest(
        model,
        processor,
        args.data,
        language=args.language,
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        output_dir=output.parent,
        metrics_name=output.name,
        max_rows=args.max_rows,
        model_name=args.model,
        skip_invalid=args.skip_invalid_rows,
    )
    print(format_table(metrics))
    log.info("wrote %s and %s", output, output.parent / "utterances.csv")
    return 0
