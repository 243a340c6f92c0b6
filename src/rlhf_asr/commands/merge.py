"""`rlhf-asr merge ADAPTER_DIR OUTPUT_DIR`: fold a LoRA/AdaLoRA adapter into its base model."""

from __future__ import annotations

import argparse

from rlhf_asr.commands.parser import CommandParser


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="rlhf-asr merge", description=__doc__.splitlines()[0])
    parser.add_argument("adapter_dir", help="folder with adapter_config.json (a training output or checkpoint)")
    parser.add_argument("output_dir", help="new (or empty) folder for the merged model")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from rlhf_asr.model.merge import merge_adapter

    output = merge_adapter(args.adapter_dir, args.output_dir)
    print(f"merged model written to {output}")
    return 0
