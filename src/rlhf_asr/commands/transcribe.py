"""`rlhf-asr transcribe`: print `path<TAB>text` for each audio file (first 30 s of each).

There is no long-form decoding yet: a longer file is transcribed from its first 30 s only, and
one line on stderr names it and its duration, so a short transcript is never mistaken for all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlhf_asr.commands.parser import CommandParser, positive_int
from rlhf_asr.errors import UserInputError


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="rlhf-asr transcribe", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model/merged/adapter folder, hub id, or tiny.en/base (bundled)")
    parser.add_argument("--language", default=None, help="default: detected by multilingual models")
    parser.add_argument("--num_beams", type=positive_int, default=None, help="default: the model's generation config (1 if unset)")
    parser.add_argument("--batch_size", type=positive_int, default=8)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: as saved)")
    parser.add_argument("audio", nargs="+", help="audio files (any format soundfile reads)")
    return parser


def check_audio_paths(paths: list[str]) -> None:
    """Names a missing file or folder before decoding (libsndfile only says "System error.")."""
    for path in paths:
        file = Path(path)
        if not file.exists():
            raise UserInputError(f"audio file {path}: no such file")
        if not file.is_file():
            raise UserInputError(f"audio file {path}: is a folder, not a file")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    check_audio_paths(args.audio)
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")  # a truncated weights file: one line, before loading
    from rlhf_asr.data.audio import WHISPER_MAX_SECONDS, load_audio
    from rlhf_asr.inference.decode import over_window, transcribe_batch
    from rlhf_asr.model.loading import default_device, load_for_inference

    audios = [load_audio(path) for path in args.audio]  # fail on a bad file before loading the model
    for path, seconds in zip(args.audio, over_window(audios)):
        if seconds is not None:
            print(f"{path}: {seconds:.1f} s long; only the first {WHISPER_MAX_SECONDS:.0f} s are transcribed "
                  "(no long-form decoding)", file=sys.stderr)
    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    texts = transcribe_batch(
        model, processor, audios, language=args.language, num_beams=args.num_beams, batch_size=args.batch_size
    )
    for path, text in zip(args.audio, texts):
        print(f"{path}\t{text}")
    return 0
