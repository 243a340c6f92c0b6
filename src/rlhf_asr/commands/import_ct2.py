"""`rlhf-asr import-ct2 --source SRC [SRC ...] --output_dir DST`: CTranslate2 Whisper -> Hugging Face folder.

The older positional form `rlhf-asr import-ct2 SRC [SRC ...] DST` is accepted too. Thin wrapper:
the conversion lives in `rlhf_asr.model.ct2`. The summary of what was written goes to stdout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlhf_asr.commands.parser import options_parser, parse_options, require
from rlhf_asr.errors import UserInputError

BUNDLED = ("tiny.en", "base")


@dataclass(frozen=True)
class ImportCT2Options:
    source: list[str] = field(
        default_factory=list,
        metadata={
            "help": "CT2 model folder, model.bin, or its part files in order (tokenizer.json and config.json "
            f"are looked up next to them); or {' / '.join(BUNDLED)} for the bundled weights"
        },
    )
    output_dir: str | None = field(default=None, metadata={"help": "new (or empty) output folder"})


def build_parser():
    parser = options_parser("rlhf-asr import-ct2", [ImportCT2Options], __doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", metavar="SRC [SRC ...] DST", help="the older positional form")
    return parser


def parse_args(argv: list[str]) -> ImportCT2Options:
    options, rest = parse_options(build_parser(), argv)
    if rest.paths:
        if options.source or options.output_dir is not None:
            raise UserInputError("give SRC ... DST either positionally or as --source/--output_dir, not both")
        if len(rest.paths) < 2:
            raise UserInputError(f"expected SRC [SRC ...] DST or --source/--output_dir; got {' '.join(rest.paths)}")
        options = replace(options, source=rest.paths[:-1], output_dir=rest.paths[-1])
    require(options, "source", "output_dir")
    return options


def _expand(sources: list[str]) -> list[Path]:
    """Bundled model names stand for their package files unless a path of that name exists."""
    from rlhf_asr.model.bundled import bundled_sources

    paths: list[Path] = []
    for source in sources:
        if source in BUNDLED and not Path(source).exists():
            paths.extend(bundled_sources(source))
        else:
            paths.append(Path(source))
    return paths


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    dst = Path(args.output_dir)
    if dst.exists() and not dst.is_dir():
        raise UserInputError(f"{dst}: is an existing file; DST must be a new or empty folder")
    from rlhf_asr.model.ct2 import convert_ct2

    start = time.perf_counter()
    dst = convert_ct2(_expand(args.source), dst)
    config = json.loads((dst / "config.json").read_text())
    print(
        f"wrote {dst} in {time.perf_counter() - start:.1f}s: Whisper d_model {config['d_model']}, "
        f"{config['encoder_layers']}+{config['decoder_layers']} layers, vocab {config['vocab_size']}"
    )
    for path in sorted(dst.iterdir()):
        print(f"  {path.name:<24} {path.stat().st_size / 1e6:9.1f} MB")
    return 0
