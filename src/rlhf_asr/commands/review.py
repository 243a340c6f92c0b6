"""`rlhf-asr review serve|export|loadcheck`: people judge a model's transcripts; judgments become pairs.

serve: a local web page (127.0.0.1 unless --host) with each clip's audio and the model's N-best
(precomputed into --db first); export: the judgments as a preference manifest for `rlhf-asr train`,
or as Label Studio JSON; loadcheck: 4 annotators against 10,000 clips, timed (docs/review.md).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rlhf_asr.commands.evaluate import MODEL_HELP
from rlhf_asr.commands.parser import check_positive, options_parser, parse_options
from rlhf_asr.errors import UserInputError

log = logging.getLogger(__name__)
SUBCOMMANDS = ("serve", "export", "loadcheck")


@dataclass(frozen=True)
class ServeOptions:
    data: str = field(metadata={"help": "ASR manifest (with or without references) or preference manifest"})
    db: str = field(metadata={"help": "review database (SQLite); made on first use, resumed after"})
    model: str | None = field(
        default=None, metadata={"help": MODEL_HELP + "; needed while some clip has no candidates yet (None)"}
    )
    annotators: str | None = field(
        default=None, metadata={"help": "file of `name token` lines (None: one token, generated and logged)"}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind; other than 127.0.0.1 opens it"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    judges_per_clip: int = field(default=1, metadata={"help": "people who judge each clip (2+: agreement)"})
    num_candidates: int = field(default=4, metadata={"help": "candidates decoded per clip (beam search)"})
    batch_size: int = field(default=8, metadata={"help": "clips decoded at once"})
    language: str | None = field(default=None, metadata={"help": "language of all clips (None: each row's)"})
    skip_invalid_rows: bool = field(default=False, metadata={"help": "skip (and count) invalid manifest rows"})
    device: str | None = field(default=None, metadata={"help": "None: cuda when available, else cpu"})
    dtype: str | None = field(default=None, metadata={"help": "float32, float16 or bfloat16 (None: as saved)"})

    def __post_init__(self):
        check_positive(self, "judges_per_clip", "num_candidates", "batch_size")
        if not 0 < self.port < 65536:
            raise UserInputError(f"--port {self.port}: must be between 1 and 65535")


@dataclass(frozen=True)
class ExportOptions:
    output: str = field(metadata={"help": "file to write: preference manifest (JSON lines) or Label Studio JSON"})
    db: str | None = field(default=None, metadata={"help": "review database (None: --from_label_studio)"})
    format: Literal["pairs", "label-studio"] = field(
        default="pairs", metadata={"help": "pairs for `rlhf-asr train`, or Label Studio ASR-hypotheses tasks"}
    )
    rejected: Literal["top", "all"] = field(
        default="top", metadata={"help": "rejected = the model's top candidate, or one row per other candidate"}
    )
    from_label_studio: str | None = field(
        default=None, metadata={"help": "a Label Studio ASR-hypotheses export to turn into pairs (None: --db)"}
    )
    keep_disagreements: bool = field(
        default=False, metadata={"help": "also write clips whose judges disagree (one row per text; else left out)"}
    )

    def __post_init__(self):
        if (self.db is None) == (self.from_label_studio is None):
            raise UserInputError("give one of --db and --from_label_studio")
        if self.from_label_studio and self.format != "pairs":
            raise UserInputError("--from_label_studio writes pairs: drop --format label-studio")


@dataclass(frozen=True)
class LoadcheckOptions:
    output: str = field(metadata={"help": "raw JSON of the measurement"})
    clips: int = field(default=10_000, metadata={"help": "clips in the database"})
    annotators: int = field(default=4, metadata={"help": "annotators judging at once"})
    judgments: int = field(default=250, metadata={"help": "judgments each annotator makes"})
    judged_before: int = field(default=0, metadata={"help": "clips already judged at the start (late in a campaign)"})
    workdir: str | None = field(default=None, metadata={"help": "folder for data and database (None: a temporary one)"})

    def __post_init__(self):
        check_positive(self, "clips", "annotators", "judgments")
        if not 0 <= self.judged_before < self.clips:
            raise UserInputError(f"--judged_before {self.judged_before}: must be at least 0 and below --clips")


OPTIONS = {"serve": ServeOptions, "export": ExportOptions, "loadcheck": LoadcheckOptions}


def build_parser(name: str = "serve"):
    return options_parser(f"rlhf-asr review {name}", [OPTIONS[name]], (__doc__ or "").splitlines()[0])


def parse_args(argv: list[str]):
    if argv and argv[0] in {"-h", "--help"}:  # every subcommand's options, one after the other
        print("\n\n".join(build_parser(name).format_help() for name in SUBCOMMANDS))
        raise SystemExit(0)
    if not argv or argv[0] not in SUBCOMMANDS:
        raise UserInputError(f"expected one of: {', '.join(SUBCOMMANDS)} (e.g. `rlhf-asr review serve --help`)")
    return parse_options(build_parser(argv[0]), argv[1:])[0]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return {ServeOptions: _serve, ExportOptions: _export, LoadcheckOptions: _loadcheck}[type(args)](args)


def _serve(args: ServeOptions) -> int:
    from rlhf_asr.review.annotators import read_annotators
    from rlhf_asr.review.store import check_db_path

    check_db_path(args.db)
    tokens = read_annotators(args.annotators) if args.annotators else None
    listening = _bind(args.host, args.port)  # before minutes of decoding, and held so no one takes it meanwhile
    try:
        return _serve_on(listening, args, tokens)
    finally:
        listening.close()


def _serve_on(listening, args: ServeOptions, tokens: dict[str, str] | None) -> int:
    from rlhf_asr.review.annotators import DEFAULT_ANNOTATOR, new_token
    from rlhf_asr.review.clips import fingerprint, read_clips
    from rlhf_asr.review.store import ReviewStore

    clips = read_clips(args.data, skip_invalid=args.skip_invalid_rows)
    store = ReviewStore(args.db)
    store.attach_dataset(clips, fingerprint(clips, args.data), args.data)
    missing = len(store.clips_without_candidates())
    processor = None
    if missing:
        if args.model is None:
            raise UserInputError(f"--model is needed: {missing} clip(s) in {args.db} have no candidates yet")
        processor = _precompute(args, store)
    limit = _correction_limit(args, store, processor)
    if tokens is None:
        token = store.meta("token") or new_token()
        store.set_meta("token", token)
        tokens = {token: DEFAULT_ANNOTATOR}
        log.info("review: open http://%s:%d/?token=%s", args.host, args.port, token)
    else:
        log.info("review: open http://%s:%d/?token=TOKEN with each annotator's token", args.host, args.port)
    if args.host != "127.0.0.1":
        log.warning("review: listening on %s: anyone who can reach it and has a token can judge", args.host)
    import uvicorn

    from rlhf_asr.review.app import create_app

    app = create_app(store, tokens, args.judges_per_clip, limit)
    log.info(
        "review: %d clips, %d annotator(s); Ctrl+C stops (every saved judgment is on disk)", len(clips), len(tokens)
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])
    return 0


def _bind(host: str, port: int):
    """The server's socket, bound now: a port in use is one line (exit 2), not a failure after decoding."""
    import socket

    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        if error.errno == errno.EADDRINUSE:
            raise UserInputError(
                f"--port {port}: {host}:{port} is in use; stop what holds it or pick another --port"
            ) from None
        raise UserInputError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error})") from None
    return listening


def _correction_limit(args: ServeOptions, store, processor):
    """Corrections are counted in tokens of the model whose candidates the page shows: --model, or
    the one recorded when they were decoded; else in bytes (a safe bound, see review/limits.py)."""
    from rlhf_asr.review.limits import correction_limit

    model = args.model or store.meta("model")
    if processor is None and model is not None:
        try:
            processor = _processor(model)
        except UserInputError as error:
            log.warning("review: no tokenizer of %s to count corrections' tokens (%s)", model, error)
    if processor is None:
        limit = correction_limit(None)
        log.warning("review: corrections are capped at %d bytes (pass --model to count tokens)", limit.max_tokens - 1)
        return limit
    return correction_limit(processor)


def _processor(model: str):
    from rlhf_asr.model.loading import BUNDLED_NAMES, load_processor

    if model in BUNDLED_NAMES:  # its tokenizer only: no conversion of the weights
        from rlhf_asr.model.bundled import bundled_processor

        return bundled_processor(model)
    return load_processor(model)


def _precompute(args: ServeOptions, store):
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")
    from rlhf_asr.inference.decode import check_language
    from rlhf_asr.model.loading import default_device, load_for_inference
    from rlhf_asr.review.candidates import precompute_candidates

    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    language = check_language(processor, args.language)
    precompute_candidates(store, model, processor, args.num_candidates, args.batch_size, language)
    # recorded so that a restart without --model counts corrections' tokens with the same tokenizer
    store.set_meta("model", str(Path(args.model).absolute()) if Path(args.model).exists() else args.model)
    return processor


def _export(args: ExportOptions) -> int:
    import json

    if args.from_label_studio:
        from rlhf_asr.review.labelstudio import pairs_from_tasks

        rows = pairs_from_tasks(args.from_label_studio, args.rejected, args.keep_disagreements)
        Path(args.output).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
        log.info("%d pair(s) from %s written to %s", len(rows), args.from_label_studio, args.output)
        return 0
    from rlhf_asr.review.store import ReviewStore, check_db_path

    check_db_path(args.db, must_exist=True)
    store = ReviewStore(args.db)
    if store.meta("dataset") is None:
        raise UserInputError(f"--db {args.db}: not a review database made by `rlhf-asr review serve`")
    if args.format == "label-studio":
        from rlhf_asr.review.labelstudio import to_tasks

        tasks = to_tasks(store)
        Path(args.output).write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        log.info("%d Label Studio task(s) written to %s", len(tasks), args.output)
        return 0
    from rlhf_asr.review.export import export_pairs

    export_pairs(store, args.output, args.rejected, args.keep_disagreements)
    progress = store.progress()
    if progress["agreement"]["clips"]:
        agreement = progress["agreement"]
        log.info("agreement: %d of %d clip(s) judged by two or more people", agreement["agreeing"], agreement["clips"])
    return 0


def _loadcheck(args: LoadcheckOptions) -> int:
    import json

    from rlhf_asr.review.loadcheck import run_loadcheck

    result = run_loadcheck(args.output, clips=args.clips, annotators=args.annotators, judgments=args.judgments,
                           workdir=args.workdir, judged_before=args.judged_before)  # fmt: skip
    print(json.dumps(result["summary"], indent=1))
    return 0 if result["summary"]["ok"] else 1
