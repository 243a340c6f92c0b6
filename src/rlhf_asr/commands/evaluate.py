"""`rlhf-asr evaluate`: WER/CER (and preference accuracy) of a model on a manifest.

Writes metrics.json to --output and utterances.csv beside it, and prints a short table (stdout).
No-speech rows ("" transcripts) give the hallucination rate; WER/CER cover the speech rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from rlhf_asr.commands.data_options import DataOptions
from rlhf_asr.commands.parser import check_positive, options_parser, parse_options
from rlhf_asr.errors import UserInputError

log = logging.getLogger(__name__)
MODEL_HELP = "model/merged/adapter folder, hub id, or tiny.en/base (bundled)"
# --backend ct2: (table row, metrics key); WER is then the CT2 model's
CT2_ROWS = (("HF WER", "hf_wer"), ("WER ct2 - hf", "wer_difference"))


@dataclass(frozen=True)
class EvaluateOptions:
    model: str = field(metadata={"help": MODEL_HELP})
    data: str = field(
        metadata={
            "help": "ASR (sentence) or preference (chosen/rejected) manifest, or a dataset: save_to_disk folder, "
            ".parquet/.arrow file, audiofolder or hub id (see the dataset options)"
        }
    )
    output: str = field(metadata={"help": "metrics JSON path; utterances.csv goes beside it"})
    language: str | None = field(
        default=None, metadata={"help": "language of all rows (None: each row's, else detected)"}
    )
    num_beams: int | None = field(
        default=None,
        metadata={
            "help": "beam width; None: the pipeline's (the generation config's, else 5), faster-whisper's 5; 1: greedy"
        },
    )
    batch_size: int = field(default=8, metadata={"help": "utterances decoded at once"})
    max_rows: int | None = field(default=None, metadata={"help": "evaluate only the first N rows (None: all)"})
    skip_invalid_rows: bool = field(
        default=False, metadata={"help": "skip invalid rows: counted in metrics.json and said on stderr"}
    )
    device: str | None = field(default=None, metadata={"help": "None: cuda when available, else cpu"})
    dtype: str | None = field(default=None, metadata={"help": "float32, float16 or bfloat16 (None: as saved)"})
    backend: Literal["hf", "ct2", "faster-whisper"] = field(
        default="hf",
        metadata={
            "help": "hf: transformers; ct2: decode with --model's CTranslate2 conversion too and report both WERs "
            "and wer_difference (ct2 - hf) on the same clips; faster-whisper: the conversion through "
            "faster-whisper with its own defaults (beam 5, its thresholds), what its users get"
        },
    )
    ct2_model: str | None = field(
        default=None,
        metadata={"help": "--backend ct2/faster-whisper: an export-ct2 folder of --model (None: export it now)"},
    )
    ct2_quantization: Literal["int8", "int8_float32", "int8_float16", "float16", "float32"] = field(
        default="int8", metadata={"help": "--backend ct2/faster-whisper without --ct2_model: weight type of the export"}
    )

    def __post_init__(self):
        check_positive(self, "num_beams", "batch_size", "max_rows")
        if self.ct2_model is not None and self.backend == "hf":
            raise UserInputError("--ct2_model is for --backend ct2 or faster-whisper")


def build_parser():
    return options_parser("rlhf-asr evaluate", [EvaluateOptions, DataOptions], __doc__.splitlines()[0])


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
        ("non-speech output rate", fmt(metrics.get("nonspeech_output_rate"), True)),
        ("insertion rate", fmt(metrics.get("insertion_rate"), True)),
        ("repetition rate", fmt(metrics.get("repetition_rate"), True)),
        *[(name, fmt(metrics[key], True)) for name, key in CT2_ROWS if key in metrics],
        ("audio seconds", fmt(metrics["audio_seconds"])),
        ("RTF", fmt(metrics["rtf"])),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str]) -> int:
    args, dataset_options, _ = parse_options(build_parser(), argv)
    from rlhf_asr.api import evaluate
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")  # a truncated weights file: one line naming the option

    metrics = evaluate(
        args.model,
        dataset_options.data_source(args.data, "test", args.max_rows),
        output=args.output,
        language=args.language,
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        max_rows=args.max_rows,
        skip_invalid_rows=args.skip_invalid_rows,
        backend=args.backend,
        ct2_model=args.ct2_model,
        ct2_quantization=args.ct2_quantization,
        device=args.device,
        dtype=args.dtype,
    )
    print(format_table(metrics))
    log.info("wrote %s and utterances.csv beside it", args.output)
    return 0
