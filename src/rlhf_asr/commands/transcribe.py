"""`rlhf-asr transcribe`: transcripts of audio files of any length, as text or timed segments.

Files up to 30 s are decoded in one window with the model's generation config (`path<TAB>text`
on stdout, as before). Longer files, and every file with `--timestamps`, go through Whisper's
sequential long-form decoding (`inference.longform`: `generate` with timestamps, condition on
previous text, temperature fallback and openai's thresholds, all options below).
`--timestamps` writes segments as JSON (default), SRT, VTT or plain text: one file per audio
(`<stem>.<format>`) into `--output_dir`, or stdout (one JSON line per file; SRT/VTT on stdout
take one file, since two subtitle files in one stream are not a subtitle file).

Files stay files wherever they stand: an option that takes a variable number of values
(`--temperature 0 0.2`, a bare `--timestamps`) takes only the words after it that are its values,
so `--timestamps --temperature -1 a.wav` says -1 is out of range and a.wav is still the audio.
`--output_dir` is checked (a folder, or one that can be made, and writable) before any decoding.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rlhf_asr.commands.evaluate import MODEL_HELP
from rlhf_asr.commands.parser import check_positive, options_parser, parse_options, require
from rlhf_asr.errors import UserInputError
from rlhf_asr.inference.longform import LongFormOptions

log = logging.getLogger(__name__)
FORMAT_NAMES = ("json", "srt", "vtt", "text")  # inference.subtitles.FORMATS (not imported here: --help stays light)


@dataclass(frozen=True)
class TranscribeOptions:
    model: str = field(metadata={"help": MODEL_HELP})
    language: str | None = field(default=None, metadata={"help": "None: detected by multilingual models"})
    num_beams: int | None = field(
        default=None, metadata={"help": "None: the pipeline's (the generation config's, else 5); 1: greedy"}
    )
    batch_size: int = field(default=8, metadata={"help": "files decoded at once"})
    device: str | None = field(default=None, metadata={"help": "None: cuda when available, else cpu"})
    dtype: str | None = field(default=None, metadata={"help": "float32, float16 or bfloat16 (None: as saved)"})
    timestamps: bool = field(default=False, metadata={"help": "timed segments (long-form decoding for every file)"})
    format: str | None = field(
        default=None,
        metadata={"help": "with --timestamps: json, srt, vtt or text (None: json)", "choices": FORMAT_NAMES},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "with --timestamps: write <stem>.<format> per file here (None: stdout)"}
    )
    seed: int = field(default=0, metadata={"help": "seeds the sampling of temperature fallback (repeatable output)"})
    audio: list[str] = field(default_factory=list, metadata={"help": "audio files; usually given positionally"})

    def __post_init__(self):
        check_positive(self, "num_beams", "batch_size")
        if not self.timestamps and (self.format is not None or self.output_dir is not None):
            given = "--format" if self.format is not None else "--output_dir"
            raise UserInputError(f"{given} writes timed segments: add --timestamps")


def build_parser():
    parser = options_parser("rlhf-asr transcribe", [TranscribeOptions, LongFormOptions], __doc__.splitlines()[0])
    # Files stay positional (`transcribe --model M a.wav b.wav`), as for any tool that takes files.
    parser.add_argument(
        "files",
        nargs="*",
        metavar="AUDIO",
        help="audio files (any format soundfile reads), before, between or after the options: a list option "
        "such as --temperature ends at the first word that is not one of its values",
    )
    return parser


def _option_action(parser, token: str):
    """The option `token` names (exactly, or as argparse's unique abbreviation), or None."""
    if not token.startswith("--") or "=" in token or token == "--":
        return None
    if token in parser._option_string_actions:
        return parser._option_string_actions[token]
    found = {id(a): a for name, a in parser._option_string_actions.items() if name.startswith(token)}
    return next(iter(found.values())) if len(found) == 1 else None


def _is_value(action, token: str) -> bool:
    """Whether `token` is a value of `action` (converts, is among its choices), not an option or a file."""
    if token.startswith("-"):  # an option, unless a negative number (as argparse reads it)
        try:
            float(token)
        except ValueError:
            return False
    try:
        value = action.type(token)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False
    return action.choices is None or value in action.choices


def bind_option_values(parser, argv: list[str]) -> list[str]:
    """argv with each variable-length option joined to its values (`--temperature=0,0.2`).

    argparse gives such an option every following word that is not an option, and the audio file
    after `--temperature 0` or a bare `--timestamps` then fails as a number or a boolean. Here an
    option takes the words after it that convert to its type; the first that does not is a file.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token, i = argv[i], i + 1
        if token == "--":
            return out + argv[i - 1 :]
        action = _option_action(parser, token)
        lists = action is not None and action.nargs in ("+", "*") and action.dest in parser.comma_lists
        optional = action is not None and action.nargs == "?" and action.type is not None
        if not (lists or optional):
            out.append(token)
            continue
        values = []
        while i < len(argv) and (lists or not values) and _is_value(action, argv[i]):
            values.append(argv[i])
            i += 1
        if values:
            out.append(f"{token}={','.join(values)}")
        elif optional:  # a bare switch (`--timestamps a.wav`): its const, spelled out so nothing is taken
            out.append(f"{token}={action.const}")
        else:
            out.append(token)  # no value at all: argparse names the option and what follows
    return out


def parse_args(argv: list[str]) -> TranscribeOptions:
    return parse_all(argv)[0]


def parse_all(argv: list[str]) -> tuple[TranscribeOptions, LongFormOptions]:
    """The command's options and the long-form decoding options."""
    parser = build_parser()
    options, long_form, rest = parse_options(parser, bind_option_values(parser, list(argv)))
    options = replace(options, audio=[*options.audio, *rest.files])
    require(options, "audio")
    subtitles = options.format in ("srt", "vtt")
    if options.timestamps and subtitles and options.output_dir is None and len(options.audio) > 1:
        raise UserInputError(f"--format {options.format} for {len(options.audio)} files needs --output_dir")
    return options, long_form


def check_audio_paths(paths: list[str]) -> None:
    """Names a missing file or folder before decoding (libsndfile only says "System error.")."""
    for path in paths:
        file = Path(path)
        if not file.exists():
            raise UserInputError(f"audio file {path}: no such file")
        if not file.is_file():
            raise UserInputError(f"audio file {path}: is a folder, not a file")


def check_output_dir(path: str) -> Path:
    """`--output_dir` is a folder, or can be made as one, and is writable: checked before decoding.

    (Else the run decodes every file and then fails with FileExistsError, NotADirectoryError or
    PermissionError.) Root may write anywhere, so `os.access` is what a normal user would meet.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"--output_dir {path}: is a file, not a folder")
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())  # "." or "/" at last
    if not existing.is_dir():
        raise UserInputError(f"--output_dir {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder else f" cannot be made: {existing} is"
        raise UserInputError(f"--output_dir {path}:{where} not writable (permission denied)")
    return folder


def output_names(paths: list[str], suffix: str) -> list[str]:
    """`<stem><suffix>` per file; a stem used twice (a/x.wav, b/x.wav) gets its position added."""
    stems = [Path(path).stem for path in paths]
    return [f"{stem}{suffix}" if stems.count(stem) == 1 else f"{stem}.{i}{suffix}" for i, stem in enumerate(stems)]


def write_segments(args: TranscribeOptions, results) -> None:
    from rlhf_asr.inference.subtitles import FORMATS, JsonFormat

    writer = FORMATS[args.format or "json"]
    if args.output_dir is None:
        for path, result in zip(args.audio, results):
            if isinstance(writer, JsonFormat):  # one line per file, named, so a stream of them stays parseable
                record = {"path": path, "text": result.text, "segments": [asdict(s) for s in result.segments]}
                print(json.dumps(record, ensure_ascii=False))
            else:
                print(writer.render(result.segments, result.text), end="")
        return
    folder = Path(args.output_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, result in zip(output_names(args.audio, writer.suffix), results):
            (folder / name).write_text(writer.render(result.segments, result.text), encoding="utf-8")
    except OSError as error:  # checked before decoding; this is the disk filling up or the folder changing since
        raise UserInputError(f"--output_dir {args.output_dir}: cannot write ({error.strerror or error})") from None
    log.info("wrote %d %s file(s) to %s", len(results), args.format or "json", folder)


def main(argv: list[str]) -> int:
    args, long_form = parse_all(argv)
    check_audio_paths(args.audio)
    if args.output_dir is not None:
        check_output_dir(args.output_dir)
    from rlhf_asr.api import transcribe
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")  # a truncated weights file: one line naming the option

    found = transcribe(
        args.model,
        args.audio,
        language=args.language,
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        timestamps=args.timestamps,
        long_form=long_form,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
    )
    if args.timestamps:
        write_segments(args, found)
        return 0
    for path, text in zip(args.audio, found):
        print(f"{path}\t{text}")
    return 0
