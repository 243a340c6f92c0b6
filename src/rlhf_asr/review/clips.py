"""The clips to review, from an ASR manifest (with or without references) or a preference manifest.

A row's own texts (reference, or chosen and rejected) join the model's candidates on the page, so a
reviewer can pick them too. Rows without any text need only `audio` (and `duration`): the reader of
training manifests insists on a transcript, so those rows are checked here with the same audio checks.
A fingerprint of the rows ties a review database to its dataset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rlhf_asr.data.audio import AudioError, audio_duration
from rlhf_asr.data.json_rows import BadRow, read_rows
from rlhf_asr.data.language import normalize_language
from rlhf_asr.data.manifest import read_asr_manifest, read_preference_manifest
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.errors import UserInputError


@dataclass(frozen=True)
class Clip:
    line: int  # the manifest line, for messages ("clips.jsonl:12")
    audio_path: str  # absolute
    duration: float
    language: str | None
    texts: tuple[tuple[str, str], ...]  # (origin, text) given by the row: reference, or chosen and rejected


def read_clips(path: str | Path, skip_invalid: bool = False) -> list[Clip]:
    """Every usable row of the manifest, in file order; its kind is told by its first row's fields."""
    path = Path(path)
    rows = read_rows(path)
    first = next((value for _, value in rows if isinstance(value, dict)), {})
    if "chosen" in first:
        report = read_preference_manifest(path, RowChecks(skip_invalid=skip_invalid))
        return [
            Clip(
                _line(e.where),
                str(e.audio_path),
                e.duration,
                e.language,
                (("chosen", e.chosen), ("rejected", e.rejected)),
            )
            for e in report.examples
        ]
    if "sentence" in first or "text" in first:
        report = read_asr_manifest(path, RowChecks(skip_invalid=skip_invalid))
        return [
            Clip(_line(e.where), str(e.audio_path), e.duration, e.language, (("reference", e.text),))
            for e in report.examples
        ]
    return _audio_only(path, rows, skip_invalid)


def _line(where: str) -> int:
    return int(where.rpartition(":")[2])


def _audio_only(path: Path, rows, skip_invalid: bool) -> list[Clip]:
    clips, skipped = [], 0
    for line, value in rows:
        try:
            clips.append(_audio_row(path, line, value))
        except UserInputError:
            if not skip_invalid:
                raise
            skipped += 1
    if not clips:
        raise UserInputError(f"{path}: no usable rows ({skipped} skipped)")
    return clips


def _audio_row(path: Path, line: int, value) -> Clip:
    where = f"{path}:{line}"
    if isinstance(value, BadRow):
        raise UserInputError(f"{where}: {value.reason}")
    audio = value.get("audio") if isinstance(value, dict) else None
    given = audio.get("path") if isinstance(audio, dict) else None
    if not isinstance(given, str) or not given.strip():
        raise UserInputError(f'{where}: needs "audio": {{"path": ...}} (and "sentence" for a reference)')
    audio_path = (path.parent / Path(given).expanduser()).absolute()
    try:
        duration = audio_duration(audio_path)
    except AudioError as error:
        raise UserInputError(f"{where}: {error.kind}: {error.path}: {error.reason}") from None
    language = value.get("language")
    try:
        language = normalize_language(language) if isinstance(language, str) else None
    except ValueError as error:
        raise UserInputError(f"{where}: {error}") from None
    return Clip(line, str(audio_path), duration, language, ())


def fingerprint(clips: list[Clip], manifest: str | Path) -> str:
    """Hash of the rows (line, audio file name relative to the manifest, texts): the dataset's identity.

    Relative paths, so a dataset moved with its manifest keeps its database.
    """
    base = Path(manifest).absolute().parent
    digest = hashlib.sha256()
    for clip in clips:
        try:
            audio = Path(clip.audio_path).relative_to(base).as_posix()
        except ValueError:
            audio = clip.audio_path
        digest.update(json.dumps([clip.line, audio, clip.texts], ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()[:16]
