"""`rlhf-asr evaluate`: WER/CER (and preference accuracy) of a model on a manifest.

Writes metrics.json to --output and utterances.csv beside it, and prints a short table (stdout).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from rlhf_asr.commands.parser import check_positive, options_parser, parse_options
from rlhf_asr.errors import UserInputError

log = logging.getLogger(__name__)
MODEL_HELP = "model/merged/adapter folder, hub id, or tiny.en/base (bundled)"
# --backend ct2: (table row, metrics key); WER is then the CT2 model's
CT2_ROWS = (("HF WER", "hf_wer"), ("WER ct2 - hf", "wer_difference"))


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
    backend: Literal["hf", "ct2"] = field(
        default="hf",
        metadata={
            "help": "hf: transformers; ct2: decode with --model's CTranslate2 conversion too and report both WERs "
            "and wer_difference (ct2 - hf) on the same clips"
        },
    )
    ct2_model: str | None = field(
        default=None, metadata={"help": "--backend ct2: an export-ct2 folder of --model (None: export it now)"}
    )
    ct2_quantization: Literal["int8", "int8_float32", "int8_float16", "float16", "float32"] = field(
        default="int8", metadata={"help": "--backend ct2 without --ct2_model: weight type of the export"}
    )

    def __post_init__(self):
        check_positive(self, "num_beams", "batch_size", "max_rows")
        if self.ct2_model is not None and self.backend != "ct2":
            raise UserInputError("--ct2_model is for --backend ct2")


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
        *[(name, fmt(metrics[key], True)) for name, key in CT2_ROWS if key in metrics],
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
    if args.ct2_model is not None and not (Path(args.ct2_model).expanduser() / "model.bin").is_file():
        raise UserInputError(f"--ct2_model {args.ct2_model}: not a CTranslate2 model folder (no model.bin)")
    from rlhf_asr.evaluation.evaluate import evaluate_manifest
    from rlhf_asr.model.loading import default_device, load_for_inference

    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    evaluate = _ct2_evaluation(args, processor) if args.backend == "ct2" else evaluate_manifest
    metrics = evaluate(
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


def _ct2_evaluation(args: EvaluateOptions, processor):
    """`compare_backends` bound to --model's CTranslate2 model: --ct2_model, or --model exported now
    to a temporary folder (removed when the process ends)."""
    from rlhf_asr.evaluation.ct2_compare import compare_backends
    from rlhf_asr.inference.ct2_decode import load_ct2_whisper
    from rlhf_asr.model.ct2_export import export_ct2

    folder = args.ct2_model
    if folder is None:
        log.info("exporting %s to CTranslate2 (%s) first", args.model, args.ct2_quantization)
        _SCRATCH.append(tempfile.TemporaryDirectory(prefix="rlhf-asr-ct2-"))
        folder = export_ct2(args.model, Path(_SCRATCH[-1].name) / "ct2", args.ct2_quantization)
    ct2 = load_ct2_whisper(folder, device=args.device or "auto", processor=processor)
    return partial(compare_backends, ct2=ct2)


_SCRATCH: list[tempfile.TemporaryDirectory] = []  # export folders, kept until the process ends
