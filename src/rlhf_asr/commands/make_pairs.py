"""`rlhf-asr make-pairs`: mine preference pairs from an ASR manifest with a model's own mistakes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rlhf_asr.commands.data_options import DataOptions
from rlhf_asr.commands.evaluate import MODEL_HELP
from rlhf_asr.commands.parser import options_parser, parse_options
from rlhf_asr.pairs.options import OPTION_NAMES, MiningOptions  # torch-free: the package loads its names lazily

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Files:
    """The model and the files: first in --help."""

    model: str = field(metadata={"help": MODEL_HELP})
    data: str = field(
        metadata={"help": "ASR manifest (audio, duration, sentence[, language]) or a dataset (see the dataset options)"}
    )
    output: str = field(metadata={"help": "preference manifest to write (JSON lines; resumed if present)"})


@dataclass(frozen=True)
class MakePairsOptions(MiningOptions, _Files):
    """The model and files, the mining options (MiningOptions' fields and checks, stated there once),
    then how the run reads, resumes and decodes."""

    no_resume: bool = field(default=False, metadata={"help": "start the output afresh instead of resuming"})
    skip_invalid_rows: bool = field(default=False, metadata={"help": "skip (and count) invalid manifest rows"})
    device: str | None = field(default=None, metadata={"help": "None: cuda when available, else cpu"})
    dtype: str | None = field(default=None, metadata={"help": "float32, float16 or bfloat16 (None: as saved)"})
    backend: Literal["hf", "ct2"] = field(
        default="hf",
        metadata={"help": "hf: transformers; ct2: CTranslate2 (--model a CT2 folder, or exported to one first)"},
    )
    ct2_quantization: Literal["int8", "int8_float32", "int8_float16", "float16", "float32"] = field(
        default="int8", metadata={"help": "--backend ct2: weight type when --model is exported first"}
    )

    def __post_init__(self):
        super().__post_init__()  # the mining options' checks
        if self.generate_nonspeech:  # the disk it needs, said before any data or model is read
            from rlhf_asr.data import nonspeech  # numpy and soundfile, not torch

            folder = nonspeech.generated_folder(Path(self.output).expanduser())
            nonspeech.check_nonspeech_space(self.generate_nonspeech, folder)


def build_parser():
    return options_parser("rlhf-asr make-pairs", [MakePairsOptions, DataOptions], __doc__.splitlines()[0])


def parse_args(argv: list[str]) -> MakePairsOptions:
    return parse_options(build_parser(), argv)[0]


def main(argv: list[str]) -> int:
    args, dataset_options, _ = parse_options(build_parser(), argv)
    from rlhf_asr.api import make_pairs
    from rlhf_asr.model.ct2_export import is_ct2_folder
    from rlhf_asr.trainer.validate import check_model_folder

    if not is_ct2_folder(args.model):
        check_model_folder(args.model, "--model")  # a truncated weights file: one line naming the option

    summary = make_pairs(
        args.model,
        dataset_options.data_source(args.data, "train"),
        args.output,
        **{name: getattr(args, name) for name in OPTION_NAMES},
        resume=not args.no_resume,
        skip_invalid_rows=args.skip_invalid_rows,
        backend=args.backend,
        ct2_quantization=args.ct2_quantization,
        device=args.device,
        dtype=args.dtype,
    )
    hypotheses = f"{summary['hypotheses']} hypotheses; " if args.nbest else ""
    log.info(
        "%d %s written to %s (%s%d speech, %d no_speech, %d padded, %d loop; %d by corruption, "
        "%d with a repetition loop); "
        "%d already correct, %d without a usable candidate, %d unreadable, %d done in an earlier run",
        summary["written"],
        "K-best rows" if args.nbest else "pairs",
        summary["output"],
        hypotheses,
        summary["speech"],
        summary["no_speech"],
        summary["padded"],
        summary["loop"],
        summary["corrupted"],
        summary["loops"],
        summary["skipped_correct"],
        summary["skipped_empty"],
        summary["errors"],
        summary["already_done"],
    )
    return 0
