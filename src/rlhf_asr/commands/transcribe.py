"""`rlhf-asr transcribe`: print `path<TAB>text` for each audio file (first 30 s of each).

There is no long-form decoding yet: a longer file is transcribed from its first 30 s only, and
one warning names it and its duration, so a short transcript is never mistaken for all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlhf_asr.commands.evaluate import MODEL_HELP
from rlhf_asr.commands.parser import check_positive, options_parser, parse_options, require
from rlhf_asr.errors import UserInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscribeOptions:
    model: str = field(metadata={"help": MODEL_HELP})
    language: str | None = field(default=None, metadata={"help": "None: detected by multilingual models"})
    num_beams: int | None = field(default=None, metadata={"help": "None: the model's generation config (1 if unset)"})
    batch_size: int = field(default=8, metadata={"help": "files decoded at once"})
    device: str | None = field(default=None, metadata={"help": "None: cuda when available, else cpu"})
    dtype: str | None = field(default=None, metadata={"help": "float32, float16 or bfloat16 (None: as saved)"})
    audio: list[str] = field(default_factory=list, metadata={"help": "audio files; usually given positionally"})

    def __post_init__(self):
        check_positive(self, "num_beams", "batch_size")


def build_parser():
    parser = options_parser("rlhf-asr transcribe", [TranscribeOptions], __doc__.splitlines()[0])
    # Files stay positional (`transcribe --model M a.wav b.wav`), as for any tool that takes files.
    parser.add_argument("files", nargs="*", metavar="AUDIO", help="audio files (any format soundfile reads)")
    return parser


def parse_args(argv: list[str]) -> TranscribeOptions:
    options, rest = parse_options(build_parser(), argv)
    options = replace(options, audio=[*options.audio, *rest.files])
    require(options, "audio")
    return options


def check_audio_paths(paths: list[str]) -> None:
    """Names a missing file or folder before decoding (libsndfile only says "System error.")."""
    for path in paths:
        file = Path(path)
        if not file.exists():
            raise UserInputError(f"audio file {path}: no such file")
        if not file.is_file():
            raise UserInputError(f"audio file {path}: is a folder, not a file")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_audio_paths(args.audio)
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")  # a truncated weights file: one line, before loading
    from rlhf_asr.data.audio import WHISPER_MAX_SECONDS, load_audio
    from rlhf_asr.inference.decode import over_window, transcribe_batch
    from rlhf_asr.model.loading import default_device, load_for_inference

    audios = [load_audio(path) for path in args.audio]  # fail on a bad file before loading the model
    for path, seconds in zip(args.audio, over_window(audios)):
        if seconds is not None:
            log.warning(
                "%s: %.1f s long; only the first %.0f s are transcribed (no long-form decoding)",
                path,
                seconds,
                WHISPER_MAX_SECONDS,
            )
    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    texts = transcribe_batch(
        model, processor, audios, language=args.language, num_beams=args.num_beams, batch_size=args.batch_size
    )
    for path, text in zip(args.audio, texts):
        print(f"{path}\t{text}")
    return 0
