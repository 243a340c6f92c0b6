"""`rlhf-asr export-ct2 MODEL OUT [--quantization int8]`: a model as a CTranslate2 / faster-whisper folder.

MODEL is a Whisper folder, a training output (an adapter, merged first), a hub id or a bundled name;
OUT a new or empty folder. `--model`/`--output_dir` are the same as the two positionals. The
conversion is CTranslate2's own (rlhf_asr.model.ct2_export); the files written go to stdout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from rlhf_asr.commands.parser import options_parser, parse_options, require, take_positionals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportCT2Options:
    model: str | None = field(
        default=None, metadata={"help": "model/merged/adapter folder, hub id, or tiny.en/base (bundled)"}
    )
    output_dir: str | None = field(default=None, metadata={"help": "new (or empty) folder for the CTranslate2 model"})
    # rlhf_asr.model.ct2_export.QUANTIZATIONS (a test keeps them equal; that module is not imported for --help).
    quantization: Literal["int8", "int8_float32", "int8_float16", "float16", "float32"] = field(
        default="int8",
        metadata={"help": "weight type: int8 (CPU deployment, faster-whisper's default there), float16 (GPU), ..."},
    )


def build_parser():
    parser = options_parser("rlhf-asr export-ct2", [ExportCT2Options], __doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", metavar="MODEL OUT", help="MODEL and OUT as positionals")
    return parser


def parse_args(argv: list[str]) -> ExportCT2Options:
    options, rest = parse_options(build_parser(), argv)
    options = take_positionals(options, rest.paths, ["model", "output_dir"], "MODEL OUT")
    require(options, "model", "output_dir")
    return options


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from rlhf_asr.model.ct2_export import check_output_folder, export_ct2
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "MODEL")  # a folder of audio, a truncated weights file: one line
    check_output_folder(args.output_dir)  # before loading anything
    output = export_ct2(args.model, args.output_dir, args.quantization)
    print(f"wrote {output} ({args.quantization})")
    for path in sorted(output.iterdir()):
        print(f"  {path.name:<24} {path.stat().st_size / 1e6:9.1f} MB")
    return 0
