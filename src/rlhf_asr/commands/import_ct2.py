"""`rlhf-asr import-ct2 SRC [SRC ...] DST`: CTranslate2 Whisper -> Hugging Face folder.

Thin wrapper: the conversion lives in `rlhf_asr.model.ct2`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rlhf_asr.commands.parser import CommandParser
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.bundled import bundled_sources
from rlhf_asr.model.ct2 import convert_ct2

BUNDLED = ("tiny.en", "base")


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="rlhf-asr import-ct2",
        description="Convert a CTranslate2 Whisper checkpoint into a Hugging Face model folder.",
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SRC",
        help="CT2 model folder, model.bin, or its part files in order (tokenizer.json and "
        f"config.json are looked up next to them); or {' / '.join(BUNDLED)} for the bundled weights",
    )
    parser.add_argument("dst", metavar="DST", type=Path, help="new (or empty) output folder")
    return parser


def _expand(sources: list[str]) -> list[Path]:
    """Bundled model names stand for their package files unless a path of that name exists."""
    paths: list[Path] = []
    for source in sources:
        if source in BUNDLED and not Path(source).exists():
            paths.extend(bundled_sources(source))
        else:
            paths.append(Path(source))
    return paths


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.dst.exists() and not args.dst.is_dir():
        raise UserInputError(f"{args.dst}: is an existing file; DST must be a new or empty folder")
    start = time.perf_counter()
    dst = convert_ct2(_expand(args.sources), args.dst)
    config = json.loads((dst / "config.json").read_text())
    print(
        f"wrote {dst} in {time.perf_counter() - start:.1f}s: Whisper d_model {config['d_model']}, "
        f"{config['encoder_layers']}+{config['decoder_layers']} layers, vocab {config['vocab_size']}"
    )
    for path in sorted(dst.iterdir()):
        print(f"  {path.name:<24} {path.stat().st_size / 1e6:9.1f} MB")
    return 0
