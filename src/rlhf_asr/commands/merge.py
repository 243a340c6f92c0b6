"""`rlhf-asr merge --adapter_dir DIR --output_dir DIR`: fold a LoRA/AdaLoRA adapter into its base model.

The older positional form `rlhf-asr merge ADAPTER_DIR OUTPUT_DIR` is accepted too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rlhf_asr.commands.parser import options_parser, parse_options, require, take_positionals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeOptions:
    adapter_dir: str | None = field(
        default=None, metadata={"help": "folder with adapter_config.json (a training output or checkpoint)"}
    )
    output_dir: str | None = field(default=None, metadata={"help": "new (or empty) folder for the merged model"})


def build_parser():
    parser = options_parser("rlhf-asr merge", [MergeOptions], __doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", metavar="ADAPTER_DIR OUTPUT_DIR", help="the older positional form")
    return parser


def parse_args(argv: list[str]) -> MergeOptions:
    options, rest = parse_options(build_parser(), argv)
    options = take_positionals(options, rest.paths, ["adapter_dir", "output_dir"], "ADAPTER_DIR OUTPUT_DIR")
    require(options, "adapter_dir", "output_dir")
    return options


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from rlhf_asr.model.merge import merge_adapter

    output = merge_adapter(args.adapter_dir, args.output_dir)
    log.info("merged model written to %s", output)
    return 0
