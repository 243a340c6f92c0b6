"""Preference and ASR manifests: the file read, every row checked up front, every problem named.

A bad row found mid-training costs hours; a bad row silently dropped skews the data. So all
rows are validated before training starts (audio via its header only: cheap), and each
problem is reported as "file:line: reason". What is checked is one `RowChecks` (data/row_checks.py).
By default any problem stops the run; with its `skip_invalid` (the CLI's --skip_invalid_rows)
invalid rows are skipped and counted. Audio over Whisper's 30 s window is such a problem: one
example cannot hold it (the feature extractor would silently cut the audio while the transcript
still covers all of it); evaluation reads with `long_audio` and decodes such rows long-form. Rows
outside a narrower duration range the user asks for are a filter, not an error: always
skipped, counted. A row repeating an earlier one (same audio, same transcripts) is a problem
too: it would silently count twice in the loss. So is a transcript holding a character no speech
produces (control characters, bidirectional overrides: data/text_rules.py), refused rather than
stripped, and audio too short to be speech (a file cut to a few samples), even where evaluation
filters no duration.

Formats: JSON lines (one object per line) or one JSON array. Preference rows:
    {"audio": {"path": "a.wav"}, "duration": 2.1, "chosen": "...", "rejected": "...",
     "language": "English", "chosens": [{"start": 0, "end": 2.1, "text": "..."}], "rejecteds": [...]}
ASR rows: {"audio": {"path"}, "duration", "sentence" (or "text"), "language"?, "sentences"?}.
K-best rows (`make-pairs --nbest K`; read where asked, `RowChecks.kbest_rows`: training and evaluation):
    {"audio": {"path"}, "duration", "reference": "...", "language"?,
     "candidates": [{"text": "...", "word_errors": 2, "logprob": -0.41}, ...]}
the reference ("" = no speech) and hypotheses with their word edits against it (whole numbers >= 0;
a hypothesis equal to the reference has 0); no two hypotheses the same, no timestamps. One file
holds one kind of row: a pair among K-best rows (or the reverse) is a bad row naming the kind.
Relative audio paths resolve against the manifest's folder.

No speech: an ASR row with "sentence": "" says nothing was said in the clip (silence, noise,
music), and a preference row with "chosen": "" says the right output is nothing (the prompt,
then end-of-text); with timestamps their segment list is [] or left out. These rows are how the
model learns not to hallucinate, so they are accepted and counted. Every other empty text stays
an error: an empty rejected transcript prefers nothing over nothing, and whitespace-only text is
refused (with a pointer to "") because it is more often a broken export than a deliberate label.

The file is read into rows by data/json_rows.py (its own failure modes, each "file:line: reason").

What a checked row becomes (data/examples.py) and the read's report (RowProblem, ManifestReport)
are plain types: the readers of other sources (datasets, streams: data/sources.py, data/stream.py)
and the training set share them.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_asr.data.audio import MIN_AUDIO_SECONDS, WHISPER_MAX_SECONDS, AudioError, audio_duration, check_audio_path
from rlhf_asr.data.examples import AsrExample, Hypothesis, KBestExample, PreferenceExample, Segment
from rlhf_asr.data.json_rows import BadRow, read_rows
from rlhf_asr.data.language import normalize_language
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.data.text_rules import text_problem
from rlhf_asr.errors import UserInputError

SEGMENT_SLACK_SECONDS = 0.05  # timestamps are rounded (Whisper: 0.02 s steps)
SHOWN_PROBLEMS = 5  # problems quoted in the error message before "and N more"


@dataclass(frozen=True)
class RowProblem:
    """One skipped row. `kind` is the short category counted in summaries."""

    manifest: Path
    line: int
    reason: str
    kind: str
    filtered: bool = False  # a duration-filter skip, not an error
    label: str | None = None  # a dataset's name: rows are then "dataset X, row 17" (data/sources.py)

    def __str__(self) -> str:
        where = f"{self.label}, row {self.line}" if self.label else f"{self.manifest}:{self.line}"
        return f"{where}: {self.reason}"


@dataclass
class ManifestReport:
    manifest: Path
    rows_read: int = 0
    examples: list = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        """'train.jsonl: 120 rows read (40 no-speech), 3 skipped (2 audio file missing, 1 duplicate row)'.

        The no-speech count (of the usable rows) is shown only when there are any.
        """
        no_speech = sum(example.no_speech for example in self.examples)
        text = f"{self.manifest.name}: {self.rows_read} rows read"
        text += f" ({no_speech} no-speech)" if no_speech else ""
        text += f", {len(self.skipped)} skipped"
        counts = Counter(problem.kind for problem in self.skipped)
        if counts:
            text += " (" + ", ".join(f"{n} {kind}" for kind, n in counts.most_common()) + ")"
        return text


@dataclass(frozen=True)
class _Context:
    manifest: Path
    checks: RowChecks
    label: str | None = None  # a dataset's name (data/sources.py): rows are named by index, not line
    fields: tuple[tuple[str, str], ...] = ()  # (row field, dataset column) pairs: messages name the column

    def where(self, line: int) -> str:
        return f"{self.label}, row {line}" if self.label else f"{self.manifest.name}:{line}"

    def field(self, name: str) -> str:
        """What messages call the row field `name`: the dataset column it was read from, else itself."""
        return dict(self.fields).get(name, name)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _get(row: dict, name: str, kind: type | tuple[type, ...], what: str, label: str | None = None) -> Any:
    label = label or name
    if name not in row:
        raise BadRow("missing field", f"missing field {label!r}")
    value = row[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRow("wrong type", f"field {label!r} should be {what}, got {type(value).__name__} {_short(value)}")
    return value


def _text(row: dict, name: str, no_speech_allowed: bool, ctx: _Context) -> str:
    """The transcript in `name`; "" only where it means no speech (`no_speech_allowed`)."""
    label = ctx.field(name)
    value = _get(row, name, str, "a string", label)
    problem = text_problem(value)  # before the whitespace test: str.strip() takes U+001C-U+001F for spaces
    if problem:
        raise BadRow("forbidden character", f"field {label!r} {problem}")
    if value.strip():
        return value
    if not no_speech_allowed:
        raise BadRow("empty transcript", f"field {label!r} is empty: a rejected transcript needs words")
    if value:
        reason = f'field {label!r} holds only whitespace: write "" for a clip with no speech, or the words said'
        raise BadRow("whitespace transcript", reason)
    return value


def _segments_of(row: dict, name: str, text_field: str, duration: float) -> tuple[Segment, ...]:
    """The segments of `text_field`; for no speech ("") left out or [], as any segment contradicts it."""
    if row[text_field]:
        return _segments(row, name, duration)
    if row.get(name, []) != []:
        raise BadRow("bad segments", f'field {name!r} has segments but {text_field!r} is "" (no speech): use []')
    return ()


def _finite(value: Any) -> float | None:
    """A JSON number as a finite float, else None (an integer of 400 digits is not finite either)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _seconds(value: Any) -> float | None:
    """A finite number >= 0, else None."""
    number = _finite(value)
    return number if number is not None and number >= 0 else None


def _segments(row: dict, name: str, duration: float) -> tuple[Segment, ...]:
    items = _get(row, name, list, "a list of {start, end, text} segments (timestamps are on)")
    if not items:
        raise BadRow("bad segments", f"field {name!r} is an empty list")
    segments = []
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise BadRow("bad segments", f"{where} should be an object, got {_short(item)}")
        start, end, text = _seconds(item.get("start")), _seconds(item.get("end")), item.get("text")
        if start is None or end is None:
            raise BadRow("bad segments", f"{where} needs numbers start and end >= 0, got {_short(item)}")
        if start > end or end > duration + SEGMENT_SLACK_SECONDS:
            raise BadRow("bad segments", f"{where} spans {start:g}-{end:g} s: needs start <= end <= {duration:.2f} s")
        if isinstance(text, str) and text_problem(text):
            raise BadRow("forbidden character", f"{where} text {text_problem(text)}")
        if not isinstance(text, str) or not text.strip():
            raise BadRow("bad segments", f"{where} has no text")
        segments.append(Segment(start, end, text))
    return tuple(segments)


def _language(row: dict, ctx: _Context) -> str | None:
    value = row.get("language")
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRow("wrong type", f"field 'language' should be a string, got {_short(value)}")
    try:
        code = normalize_language(value)
    except ValueError as error:
        raise BadRow("unknown language", str(error)) from None
    if ctx.checks.known_languages is not None and code not in ctx.checks.known_languages:
        known = ", ".join(sorted(ctx.checks.known_languages)[:8])
        reason = f"language {value!r} ({code}) is unknown to the tokenizer (it knows e.g. {known})"
        raise BadRow("unknown language", reason)
    return code


def _audio(row: dict, ctx: _Context) -> tuple[Path, float]:
    """Resolved audio path and its duration (read from the file when check_audio)."""
    audio = _get(row, "audio", dict, 'an object like {"path": "a.wav"}')
    given = _get(audio, "path", str, "a string", label="audio.path")
    if not given.strip():  # Path("") is ".", the manifest's folder
        raise BadRow("bad audio path", "field 'audio.path' is empty")
    value = _get(row, "duration", (int, float), "a number")
    declared = _finite(value)
    if declared is None or declared <= 0:
        raise BadRow("wrong type", f"field 'duration' should be a positive number, got {_short(value)}")
    path = (ctx.manifest.parent / Path(given).expanduser()).absolute()  # no-op for absolute paths
    duration = declared
    try:  # existence, type and readability always; the real duration (and NaN/inf check) with check_audio
        if ctx.checks.check_audio:
            duration = audio_duration(path)
        else:
            check_audio_path(path)
    except AudioError as error:
        raise BadRow(error.kind, f"{error.kind}: {error.path}: {error.reason}") from None
    off, (seconds, fraction) = abs(declared - duration), ctx.checks.duration_tolerance
    if off > seconds and off > fraction * duration:
        raise BadRow("duration mismatch", f"declared duration {declared:g} s but {path.name} lasts {duration:.2f} s")
    if duration < MIN_AUDIO_SECONDS:  # an error, not the min_duration filter: evaluation filters nothing
        reason = (
            f"audio lasts {duration * 1000:.1f} ms, shorter than one {MIN_AUDIO_SECONDS * 1000:g} ms frame of "
            "Whisper's features: too short to be speech"
        )
        raise BadRow("audio too short", reason)
    if duration > WHISPER_MAX_SECONDS and not ctx.checks.long_audio:
        kind = f"over Whisper's {WHISPER_MAX_SECONDS:g} s"
        reason = f"audio lasts {duration:.2f} s, {kind} window: cut it into clips of at most {WHISPER_MAX_SECONDS:g} s"
        raise BadRow(kind, reason)
    if duration > ctx.checks.max_duration:
        kind = f"longer than {ctx.checks.max_duration:g} s"
        raise BadRow(kind, f"audio lasts {duration:.2f} s, {kind} (max_duration)", filtered=True)
    if duration < ctx.checks.min_duration:
        kind = f"shorter than {ctx.checks.min_duration:g} s"
        raise BadRow(kind, f"audio lasts {duration:.2f} s, {kind} (min_duration)", filtered=True)
    return path, duration


def _preference_row(row: dict, line: int, ctx: _Context) -> PreferenceExample:
    chosen = _text(row, "chosen", no_speech_allowed=True, ctx=ctx)
    rejected = _text(row, "rejected", no_speech_allowed=False, ctx=ctx)
    if chosen.split() == rejected.split():  # equal up to whitespace
        raise BadRow("chosen equals rejected", f"chosen equals rejected: {_short(chosen)}")
    language = _language(row, ctx)
    path, duration = _audio(row, ctx)
    chosen_segments = rejected_segments = None
    if ctx.checks.timestamps:
        chosen_segments = _segments_of(row, "chosens", "chosen", duration)
        rejected_segments = _segments_of(row, "rejecteds", "rejected", duration)
    return PreferenceExample(
        path, duration, chosen, rejected, language, chosen_segments, rejected_segments, ctx.where(line)
    )


PAIR_FIELDS, KBEST_FIELDS = ("chosen", "rejected"), ("reference", "candidates")
ROW_KINDS = {
    PreferenceExample: "preference pair (chosen, rejected)",
    KBestExample: "K-best row (reference, candidates)",
}


def _hypothesis(item: Any, where: str, reference: str) -> Hypothesis:
    """`candidates[i]` of a K-best row: text with words, whole word errors >= 0, an optional finite log-prob."""
    if not isinstance(item, dict):
        raise BadRow("bad candidates", f'{where} should be an object like {{"text": "...", "word_errors": 1}}, got '
                     f"{_short(item)}")  # fmt: skip
    text = _get(item, "text", str, "a string", label=f"{where}.text")
    problem = text_problem(text)
    if problem:
        raise BadRow("forbidden character", f"field '{where}.text' {problem}")
    if not text.strip():
        raise BadRow("empty transcript", f"field '{where}.text' is empty: a hypothesis needs words")
    errors = item.get("word_errors")
    if "word_errors" not in item:
        raise BadRow("missing field", f"missing field '{where}.word_errors'")
    if isinstance(errors, bool) or not isinstance(errors, int) or errors < 0:
        reason = f"field '{where}.word_errors' should be a whole number >= 0 (word edits against the reference)"
        raise BadRow("bad word errors", f"{reason}, got {_short(errors)}")
    if errors and text.split() == reference.split():
        raise BadRow("bad word errors", f"{where} is the reference itself but has word_errors {errors}")
    logprob = item.get("logprob")
    if logprob is not None and _finite(logprob) is None:
        raise BadRow("wrong type", f"field '{where}.logprob' should be a finite number, got {_short(logprob)}")
    return Hypothesis(text, errors, None if logprob is None else float(logprob))


def _kbest_row(row: dict, line: int, ctx: _Context) -> KBestExample:
    if any(name in row for name in PAIR_FIELDS):
        raise BadRow("pair and K-best", "row holds both a pair (chosen, rejected) and a K-best list (reference, "
                     "candidates): keep one")  # fmt: skip
    if ctx.checks.timestamps:
        raise BadRow("K-best with timestamps", "a K-best row has no segments: train it without --timestamps")
    reference = _text(row, "reference", no_speech_allowed=True, ctx=ctx)
    items = _get(row, "candidates", list, 'a list of {"text", "word_errors"} objects')
    if not items:
        raise BadRow("bad candidates", "field 'candidates' is an empty list")
    hypotheses = tuple(_hypothesis(item, f"candidates[{i}]", reference) for i, item in enumerate(items))
    words = [hypothesis.text.split() for hypothesis in hypotheses]
    for i, text in enumerate(words):
        if text in words[:i]:
            raise BadRow("duplicate candidate", f"candidates[{i}] repeats candidates[{words.index(text)}]")
    language = _language(row, ctx)
    path, duration = _audio(row, ctx)
    return KBestExample(path, duration, reference, hypotheses, language, ctx.where(line))


def _training_row(row: dict, line: int, ctx: _Context) -> PreferenceExample | KBestExample:
    """A K-best row where the row has a K-best field (reference, candidates), else a preference pair."""
    return (_kbest_row if any(name in row for name in KBEST_FIELDS) else _preference_row)(row, line, ctx)


def _asr_row(row: dict, line: int, ctx: _Context) -> AsrExample:
    if "sentence" not in row and "text" not in row:
        raise BadRow("missing field", "missing field 'sentence' (or 'text')")
    name = "sentence" if "sentence" in row else "text"
    text = _text(row, name, no_speech_allowed=True, ctx=ctx)
    language = _language(row, ctx)
    path, duration = _audio(row, ctx)
    segments = _segments_of(row, "sentences", name, duration) if ctx.checks.timestamps else None
    return AsrExample(path, duration, text, language, segments, ctx.where(line))


def row_parser(kind: str, checks: RowChecks) -> Callable[[dict, int, _Context], Any]:
    """What turns one row (a dict) into its example: an ASR row, a preference pair, or (with
    `checks.kbest_rows`) a pair or K-best row, told apart by the row's fields (`_training_row`)."""
    if kind == "preference":
        return _training_row if checks.kbest_rows else _preference_row
    return _asr_row


def _read(ctx: _Context, parse: Callable[[dict, int, _Context], Any], rows: Iterable | None = None) -> ManifestReport:
    path = ctx.manifest
    report = ManifestReport(path)
    first_seen: dict[Any, int] = {}  # an example without its `where` -> the line it first appeared on
    first_of_kind: tuple[type, int] | None = None  # the file's kind of row: the first usable row's
    for line, value in read_rows(path) if rows is None else rows:
        report.rows_read += 1
        try:
            if isinstance(value, BadRow):
                raise value
            if not isinstance(value, dict):
                raise BadRow(
                    "not an object", f"row should be a JSON object, got {type(value).__name__} {_short(value)}"
                )
            example = parse(value, line, ctx)
            first_of_kind = first_of_kind or (type(example), line)
            if type(example) is not first_of_kind[0]:
                kinds = ROW_KINDS.get(type(example)), ROW_KINDS.get(first_of_kind[0])
                raise BadRow("other kind of row", f"a {kinds[0]} where {ctx.where(first_of_kind[1])} is a {kinds[1]}: "
                             "one file holds one kind of row; write them to separate files")  # fmt: skip
            key = dataclasses.replace(example, where="")
            if key in first_seen:
                raise BadRow("duplicate row", f"duplicate of line {first_seen[key]}: same audio and transcripts")
            first_seen[key] = line
            report.examples.append(example)
        except BadRow as bad:
            report.skipped.append(RowProblem(path, line, bad.reason, bad.kind, bad.filtered, ctx.label))
    errors = [problem for problem in report.skipped if not problem.filtered]
    if errors and not ctx.checks.skip_invalid:
        shown = [f"  {problem}" for problem in errors[:SHOWN_PROBLEMS]]
        more = [f"  ... and {len(errors) - SHOWN_PROBLEMS} more"] if len(errors) > SHOWN_PROBLEMS else []
        raise UserInputError(
            "\n".join(
                [f"{ctx.label or path}: {len(errors)} invalid row(s) of {report.rows_read}:", *shown, *more]
                + ["Fix them, or pass --skip_invalid_rows to skip them (they are then counted and reported)."]
            )
        )
    if not report.examples:
        raise UserInputError(f"no usable rows: {report.summary()}")
    return report


def read_manifest(
    path: str | Path,
    kind: str,
    checks: RowChecks | None = None,
    *,
    rows: Iterable | None = None,
    label: str | None = None,
    fields: dict[str, str] | None = None,
    **changes,
) -> ManifestReport:
    """Read a manifest as `kind` ("preference" or "asr"), every row checked as `checks` says (None: RowChecks()).

    `report.examples` are PreferenceExample (with `checks.kbest_rows`, KBestExample where the file
    holds K-best rows), or AsrExample ("sentence"/"text" rows; with timestamps, "sentences" required).
    changes: RowChecks fields for this read (`skip_invalid=True`), as `dataclasses.replace` takes them.
    rows/label: (index, row) pairs already read from elsewhere (a dataset: data/sources.py), named
    "label, row N" in messages; `path` then only names them.
    fields: row field -> the dataset column it came from ({"chosen": "good"}), for messages.
    Raises UserInputError on any invalid row unless `checks.skip_invalid`, and when no row is usable.
    """
    checks = dataclasses.replace(checks or RowChecks(), **changes)
    ctx = _Context(Path(path), checks, label, tuple((fields or {}).items()))
    return _read(ctx, row_parser(kind, checks), rows)


def read_preference_manifest(path: str | Path, checks: RowChecks | None = None, **options) -> ManifestReport:
    """Read and check a preference manifest (read_manifest's options); `report.examples` are
    PreferenceExample, or with `kbest_rows` KBestExample where the file holds K-best rows."""
    return read_manifest(path, "preference", checks, **options)


def read_asr_manifest(path: str | Path, checks: RowChecks | None = None, **options) -> ManifestReport:
    """Read and check an ASR manifest ("sentence"/"text" rows; read_manifest's options); `report.examples`
    are AsrExample."""
    return read_manifest(path, "asr", checks, **options)
