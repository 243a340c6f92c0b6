"""Hugging Face datasets as training/evaluation data: rows fed into the manifest readers.

Users keep audio data as `datasets` objects more often than as JSON lines, so --train_data,
--test_data and --data also take: a folder written by `save_to_disk` (a Dataset, or a DatasetDict
and a split), parquet or arrow files (a glob too), an `audiofolder` (audio files + metadata.csv or
metadata.jsonl, `file_name` naming each file), and a hub dataset id (with a config and split),
read from the local Hugging Face cache only unless the machine is online.

Each dataset row becomes a manifest row and goes through the very same checks as a JSONL
manifest (data/manifest.py), named "dataset X (split), row 17" by its 0-based index, so
`ds[17]` finds it. Audio is never decoded by `datasets` (its decoder needs torchcodec): the
column is cast to `Audio(decode=False)`, and audio stored inside the dataset as bytes is written
once to a content-addressed file (`<RLHF_ASR_CACHE>/dataset-audio/<blake2b of the bytes>.<ext>`).
The rest of the product then sees ordinary files: the same loader, the same encoder-once engine,
and an encoder-cache key (path, size, mtime) that names the audio content, never the row position.

`streaming` reads rows one at a time (no Arrow copy of parquet/hub data first), so only the rows'
text stays in memory; their audio lives in those files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from rlhf_asr.data.audio import AudioError, audio_duration
from rlhf_asr.data.dataset_files import data_files
from rlhf_asr.data.json_rows import BadRow
from rlhf_asr.data.manifest import ManifestReport, read_manifest
from rlhf_asr.data.options import Columns, DataSource, as_source
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.errors import UserInputError

logger = logging.getLogger(__name__)

FILE_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow"}
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
MANIFEST_SUFFIXES = (".json", ".jsonl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PASSED_THROUGH = ("chosens", "rejecteds", "sentences")  # timestamp segments, when the rows have them


def is_manifest(location: str | Path) -> bool:
    """True for a JSON manifest (or a path that is no dataset: the manifest reader names what is wrong)."""
    path = Path(location).expanduser()
    if path.is_dir() or path.suffix.lower() in FILE_SUFFIXES:
        return False
    if path.exists() or path.suffix.lower() in MANIFEST_SUFFIXES:
        return True
    return not _HUB_ID.match(str(location))  # a missing path that cannot be a hub id either


def audio_folder() -> Path:
    """Where audio stored inside datasets is written, in the cache root of the bundled models."""
    root = os.environ.get("RLHF_ASR_CACHE") or Path.home() / ".cache" / "rlhf-asr"
    return Path(root) / "dataset-audio"


def export_audio(data: bytes, name: str | None, folder: Path | None = None) -> Path:
    """The file holding `data`, named by its content hash (written once, atomically)."""
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    suffix = Path(name).suffix.lower() if name and Path(name).suffix else ".wav"  # libsndfile reads by content
    path = (folder or audio_folder()) / digest[:2] / f"{digest}{suffix}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, path)
    return path


class _Opened:
    """A loaded dataset (map-style or streaming), its name for messages and its audio base folder."""

    def __init__(self, dataset, label: str, base: Path, audiofolder: bool = False):
        self.dataset, self.label, self.base, self.audiofolder = dataset, label, base, audiofolder
        self.columns = list(dataset.column_names or (dataset.features or {}).keys())
        self.audio_column = "audio"  # set by _prepare


_SPLIT_NOTES: set[tuple] = set()  # notes already logged: a source is opened once for its kind, again for rows


def _say_once(key: tuple, message: str) -> None:
    if key not in _SPLIT_NOTES:
        _SPLIT_NOTES.add(key)
        logger.info(message)


def _pick_split(splits: dict, source: DataSource, label: str):
    """(dataset, split name) by the one split rule (DataSource); UserInputError listing the splits."""
    names, usual = list(splits), source.split or source.default_split
    option = source.split_option or "DataSource(split=...)"
    key = (str(Path(source.location).expanduser().absolute()), source.config, usual)
    if usual in splits:
        if not source.split and len(names) > 1:  # several to choose from, none named: say which
            _say_once(key, f"{label}: split {usual!r} (it has {', '.join(names)}; {option} names another)")
        return splits[usual], usual
    if not source.split and len(names) == 1:
        _say_once(key, f"{label} has no split {usual!r}: using its only split, {names[0]!r} ({option} names one)")
        return splits[names[0]], names[0]
    raise UserInputError(f"{label}: no split {usual!r} (it has {', '.join(names)}); choose one with {option}")


def _load_from_disk(path: Path, source: DataSource) -> _Opened:
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise UserInputError(f"dataset {path}: cannot load it with load_from_disk: {error}") from None
    label = f"dataset {path.name}"
    if isinstance(loaded, DatasetDict):
        loaded, name = _pick_split(loaded, source, label)
        label = f"{label} ({name})"
    if source.streaming:
        loaded = loaded.to_iterable_dataset()
    return _Opened(loaded, label, path)


def _load_builder(builder: str, source: DataSource, label: str, base: Path, **kwargs) -> _Opened:
    """Files through a packaged builder (parquet, arrow, csv, json): one split, whatever its name."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    try:
        dataset = load_dataset(builder, **kwargs, split="train", streaming=source.streaming)
    except (DatasetGenerationError, OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        cause = error.__cause__ or error  # DatasetGenerationError wraps the reader's own error
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise UserInputError(f"{label}: cannot load it with `datasets` ({detail})") from None
    return _Opened(dataset, label, base, audiofolder=builder in ("csv", "json"))


def _offline() -> bool:
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag.strip().lower() in {"1", "true", "yes", "on"} for flag in flags)


def _load_hub(source: DataSource) -> _Opened:
    """A hub dataset from the local cache; asked of the hub only when the machine is not offline."""
    import datasets.config
    import huggingface_hub.constants as hub
    from datasets import load_dataset

    name = source.location
    label = f"dataset {name}" + (f"/{source.config}" if source.config else "")
    args = dict(path=name, name=source.config, streaming=source.streaming)
    saved = datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE
    try:
        datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True  # the cache first: no network wait
        loaded = load_dataset(**args)
    except (ConnectionError, FileNotFoundError, ValueError) as error:
        if _offline():
            raise UserInputError(
                f"{name!r} is not a local file or folder, and no hub dataset {name!r}"
                + (f" (config {source.config!r})" if source.config else "")
                + " is in the local Hugging Face cache; this machine is offline (HF_HUB_OFFLINE): "
                "give a save_to_disk folder, parquet files or an audiofolder instead"
            ) from None
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved
        try:
            loaded = load_dataset(**args)
        except Exception as online:  # the hub's many errors (not found, gated, no network): one line
            raise UserInputError(f"{label}: cannot load it ({type(online).__name__}: {online}); {error}") from None
    finally:
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved
    dataset, split = _pick_split(loaded, source, label)
    return _Opened(dataset, f"{label} ({split})", Path.cwd())


def open_dataset(source: DataSource) -> _Opened:
    """The dataset `source.location` names, by its form; UserInputError when it is none of them."""
    path = Path(source.location).expanduser()
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return _load_from_disk(path, source)
        metadata = [path / name for name in METADATA_FILES if (path / name).is_file()]
        if metadata:
            label = f"audiofolder {path.name}"
            builder = "csv" if metadata[0].suffix == ".csv" else "json"
            return _load_builder(builder, source, label, path, data_files={"train": str(metadata[0])})
        raise UserInputError(
            f"--data {path}: a folder, but neither a save_to_disk dataset (dataset_info.json / dataset_dict.json) "
            f"nor an audiofolder ({' or '.join(METADATA_FILES)})"
        )
    builder = FILE_SUFFIXES.get(path.suffix.lower())
    if builder:
        files = {"train": data_files(builder, path)}
        return _load_builder(builder, source, f"dataset {path.name}", path.parent, data_files=files)
    return _load_hub(source)


def _cast_audio(opened: _Opened, column: str) -> None:
    from datasets import Audio

    features = opened.dataset.features or {}
    if isinstance(features.get(column), Audio):
        opened.dataset = opened.dataset.cast_column(column, Audio(decode=False))


def _audio_file(value, base: Path, column: str) -> Path:
    """The file of one row's audio value: {"bytes", "path"} (Audio), or a path string."""
    if isinstance(value, dict) and value.get("bytes"):
        return export_audio(value["bytes"], value.get("path"))
    given = value.get("path") if isinstance(value, dict) else value
    if not isinstance(given, str) or not given.strip():
        got = f"{type(given).__name__} {given!r}" if isinstance(given, str) else type(value).__name__
        raise BadRow("bad audio path", f"column {column!r} should hold a file path or audio bytes, got {got}")
    return (base / Path(given).expanduser()).absolute()  # relative paths: against the dataset's folder


def _duration(value, path: Path, column: str) -> float:
    """The audio's real duration (a dataset declares none); a bad file named as the user knows it.

    Audio bytes live in a cache copy the user never saw: they are named by column (and the name
    stored with them), the row by its index in the message around this.
    """
    try:
        return audio_duration(path)
    except AudioError as error:
        if isinstance(value, dict) and value.get("bytes"):
            name = f" ({value['path']})" if value.get("path") else ""
            raise BadRow(error.kind, f"{error.kind}: the bytes in column {column!r}{name}: {error.reason}") from None
        raise BadRow(error.kind, f"{error.kind}: {error.path}: {error.reason}") from None


def _row(raw: dict, kind: str, columns: Columns, text_column: str, base: Path) -> dict:
    value = raw.get(columns.audio)
    path = _audio_file(value, base, columns.audio)
    duration = _duration(value, path, columns.audio)
    row = {"audio": {"path": str(path)}, "duration": duration}
    if kind == "preference":
        row.update(chosen=raw.get(columns.chosen), rejected=raw.get(columns.rejected))
    else:
        row["sentence"] = raw.get(text_column)
    if raw.get(columns.language) is not None:
        row["language"] = raw[columns.language]
    row.update({name: raw[name] for name in _PASSED_THROUGH if raw.get(name) is not None})
    return row


def _rows(opened: _Opened, kind: str, source: DataSource, text_column: str) -> Iterator[tuple[int, object]]:
    dataset = opened.dataset
    if source.limit:
        dataset = dataset.take(source.limit)  # Dataset and IterableDataset alike
    columns = dataclasses.replace(source.columns, audio=opened.audio_column)
    for index, raw in enumerate(dataset):
        try:
            yield index, _row(raw, kind, columns, text_column, opened.base)
        except BadRow as bad:
            yield index, bad


def _require(opened: _Opened, names: dict[str, str]) -> None:
    """Each mapped column exists: one line naming the option, before any row is read."""
    for option, name in names.items():
        if name not in opened.columns:
            have = ", ".join(opened.columns)
            raise UserInputError(f"{opened.label} has no column {name!r} (it has {have}); map one with --{option}")


def _text_column(opened: _Opened, columns: Columns) -> str:
    if columns.text:
        return columns.text
    return next((name for name in ("sentence", "text") if name in opened.columns), "sentence")


def _kind(opened: _Opened, columns: Columns, text: str) -> str:
    """'preference' with both transcript columns, 'asr' with a reference column; else one line naming the options."""
    if columns.chosen in opened.columns and columns.rejected in opened.columns:
        return "preference"
    if text in opened.columns:
        return "asr"
    raise UserInputError(
        f"{opened.label} has neither columns {columns.chosen!r} and {columns.rejected!r} (--chosen_column, "
        f"--rejected_column) nor a reference column {text!r} (--text_column); it has {', '.join(opened.columns)}"
    )


def _prepare(source: DataSource, kind: str | None) -> tuple[_Opened, str, str]:
    opened = open_dataset(source)
    columns = source.columns
    # An audiofolder names its files in `file_name` (relative to the folder), as `datasets` reads it.
    audiofolder_files = opened.audiofolder and columns.audio not in opened.columns
    opened.audio_column = "file_name" if audiofolder_files else columns.audio
    _cast_audio(opened, opened.audio_column)
    text = _text_column(opened, columns)
    if kind is None:
        kind = _kind(opened, columns, text)
    wanted = {"audio_column": opened.audio_column}
    if kind == "preference":
        wanted.update(chosen_column=columns.chosen, rejected_column=columns.rejected)
    else:
        wanted["text_column"] = text
    _require(opened, wanted)
    return opened, kind, text


def open_rows(data: str | Path | DataSource, kind: str | None = None):
    """(label, kind, rows): `rows()` iterates the dataset's (index, manifest row or BadRow) anew each call.

    For a stream read while training (data/stream.py); columns and split are checked here, up front.
    """
    source = as_source(data)
    opened, kind, text = _prepare(source, kind)
    return opened.label, kind, lambda: _rows(opened, kind, source, text)


def data_kind(data: str | Path | DataSource) -> str | None:
    """'preference' or 'asr' for a dataset (by its columns); None for a JSON manifest (peek at its rows)."""
    source = as_source(data)
    if is_manifest(source.location):
        return None
    return _prepare(source, None)[1]


def read_data(data: str | Path | DataSource, kind: str, checks: RowChecks | None = None, **changes) -> ManifestReport:
    """A manifest or a dataset, read and checked as `kind` ("preference" or "asr") by the manifest reader.

    `checks`: the row checks (None: RowChecks()); `changes`, RowChecks fields for this read (`skip_invalid=True`).
    """
    source = as_source(data)
    checks = dataclasses.replace(checks or RowChecks(), **changes)
    if is_manifest(source.location):
        return read_manifest(source.location, kind, checks)
    opened, kind, text = _prepare(source, kind)
    rows = _rows(opened, kind, source, text)
    checks = dataclasses.replace(checks, check_audio=False)  # _row already read each file's real duration
    columns = source.columns
    fields = {"chosen": columns.chosen, "rejected": columns.rejected, "sentence": text}  # messages name columns
    return read_manifest(Path(source.location), kind, checks, rows=rows, label=opened.label, fields=fields)
