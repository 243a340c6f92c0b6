"""`rlhf-asr review serve|export|loadcheck`: people judge a model's transcripts; judgments become pairs.

serve: a local web page (127.0.0.1 unless --host) with each clip's audio and the model's N-best
(precomputed into --db first); export: the judgments as a preference manifest for `rlhf-asr train`,
or as Label Studio JSON; loadcheck: 4 annotators against 10,000 clips, timed (docs/review.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
    from rlhf_asr.review.annotators import DEFAULT_ANNOTATOR, new_token, read_annotators
    from rlhf_asr.review.clips import fingerprint, read_clips
    from rlhf_asr.review.store import ReviewStore

    tokens = read_annotators(args.annotators) if args.annotators else None
    clips = read_clips(args.data, skip_invalid=args.skip_invalid_rows)
    store = ReviewStore(args.db)
    store.attach_dataset(clips, fingerprint(clips, args.data), args.data)
    missing = len(store.clips_without_candidates())
    if missing:
        if args.model is None:
            raise UserInputError(f"--model is needed: {missing} clip(s) in {args.db} have no candidates yet")
        _precompute(args, store)
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

    app = create_app(store, tokens, args.judges_per_clip)
    log.info(
        "review: %d clips, %d annotator(s); Ctrl+C stops (every saved judgment is on disk)", len(clips), len(tokens)
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _precompute(args: ServeOptions, store) -> None:
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(args.model, "--model")
    from rlhf_asr.inference.decode import check_language
    from rlhf_asr.model.loading import default_device, load_for_inference
    from rlhf_asr.review.candidates import precompute_candidates

    model, processor = load_for_inference(args.model, device=args.device or default_device(), dtype=args.dtype)
    language = check_language(processor, args.language)
    precompute_candidates(store, model, processor, args.num_candidates, args.batch_size, language)


def _export(args: ExportOptions) -> int:
    import json
    from pathlib import Path

    if args.from_label_studio:
        from rlhf_asr.review.labelstudio import pairs_from_tasks

        rows = pairs_from_tasks(args.from_label_studio, args.rejected)
        Path(args.output).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
        log.info("%d pair(s) from %s written to %s", len(rows), args.from_label_studio, args.output)
        return 0
    from rlhf_asr.review.store import ReviewStore

    if not Path(args.db).is_file():
        raise UserInputError(f"--db {args.db}: no such file")
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

    export_pairs(store, args.output, args.rejected)
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
