"""A manifest file read into rows (`read_rows`): JSON lines or one JSON array, each row its line and value.

Reading the file (read_rows) has failure modes of its own, each of which used to surface as a
traceback or as a position nobody can find in an editor: a byte offset for non-UTF-8 text, a
RecursionError for deeply nested JSON, a ValueError for a number of 5,000 digits. Here each
becomes "file:line: reason". In JSON lines one bad line is one bad row (counted, skippable); in a
JSON array the whole file is unreadable, so the error names the line of the array element where
reading stopped.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlhf_asr.errors import UserInputError


class BadRow(Exception):
    """A row's first problem. `kind` is the category counted in summaries; `filtered` marks a user filter."""

    def __init__(self, kind: str, reason: str, filtered: bool = False):
        super().__init__(reason)
        self.kind, self.reason, self.filtered = kind, reason, filtered


Rows = list[tuple[int, Any]]  # (1-based line, parsed value or BadRow)

_SPACE = re.compile(r"\s*")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as decoded by surrogateescape
_WIDE_BOMS = [(codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")]  # fmt: skip


def _parse_problem(error: Exception) -> str:
    """What the json module could not read, as one short reason (no traceback, no offset)."""
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} (column {error.colno})"
    if isinstance(error, RecursionError):
        return "nested too deeply to read"
    return str(error).split(";")[0]  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"


def _not_utf8(text: str, match: re.Match) -> tuple[int, str]:
    """(line, reason) for the first byte that is not UTF-8."""
    line_start = text.rfind("\n", 0, match.start()) + 1
    byte = ord(match.group()) - 0xDC00
    column = match.start() - line_start + 1
    return text.count("\n", 0, match.start()) + 1, f"not UTF-8 text (byte 0x{byte:02x} at column {column})"


def _array_rows(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """(line, value) for each element of a JSON array; UserInputError where an element cannot be read."""
    decoder, line, counted = json.JSONDecoder(), 1, 0
    pos = _SPACE.match(text, text.index("[") + 1).end()
    while text[pos] != "]":
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except (RecursionError, ValueError) as error:
            raise UserInputError(f"{path}:{line}: invalid JSON array: {_parse_problem(error)}") from None
        yield line, value
        pos = _SPACE.match(text, end).end()
        if text[pos] == ",":
            pos = _SPACE.match(text, pos + 1).end()


def _jsonl_rows(text: str) -> Iterator[tuple[int, Any]]:
    """(line, value or BadRow) for each non-blank line."""
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        bad_byte = _NOT_UTF8.search(line)
        if bad_byte:
            yield number, BadRow("not UTF-8", _not_utf8(line, bad_byte)[1] + ": save the manifest as UTF-8")
            continue
        try:
            yield number, json.loads(line)
        except (RecursionError, ValueError) as error:  # JSONDecodeError is a ValueError
            yield number, BadRow("invalid JSON", f"invalid JSON: {_parse_problem(error)}")


def _spread_objects(text: str) -> int:
    """How many JSON values `text` holds one after another (0 unless all of it is JSON)."""
    decoder, count, pos = json.JSONDecoder(), 0, _SPACE.match(text).end()
    try:
        while pos < len(text):
            _, end = decoder.raw_decode(text, pos)
            count, pos = count + 1, _SPACE.match(text, end).end()
    except (RecursionError, ValueError):
        return 0
    return count


def _array(path: Path, text: str) -> Rows:
    try:
        json.loads(text)  # the whole array first: a syntax error anywhere stops here, with its line
    except json.JSONDecodeError as error:
        try:  # JSON lines whose first row happens to be a list: each row is reported on its own
            json.loads(text.lstrip().split("\n", 1)[0])
        except (RecursionError, ValueError):
            where = f"{path}:{error.lineno}"
            raise UserInputError(f"{where}: invalid JSON array: {error.msg} (column {error.colno})") from None
        return list(_jsonl_rows(text))
    except (RecursionError, ValueError):
        pass  # too deep / too long a number: _array_rows finds the element and names its line
    return list(_array_rows(path, text))


def _check_path(path: Path) -> None:
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserInputError(f"manifest {path} is a symlink loop") from None
        if os.path.islink(path):
            raise UserInputError(f"manifest {path} not found (broken symlink to {os.readlink(path)})") from None
        raise UserInputError(f"manifest {path} not found ({error.strerror})") from None
    except ValueError:  # a NUL in the path
        raise UserInputError(f"manifest path {str(path)!r} contains a NUL character") from None
    if not path.is_file():
        raise UserInputError(f"manifest {path} is not a file" + (" (it is a folder)" if path.is_dir() else ""))


def read_rows(path: Path) -> Rows:
    """The manifest's rows, in file order; UserInputError when the file as a whole cannot be read."""
    _check_path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserInputError(f"cannot read manifest {path}: {error.strerror or error}") from None
    wide = next((name for bom, name in _WIDE_BOMS if data.startswith(bom)), None)
    if wide:
        bom = f"it starts with a {wide} byte-order mark"
        raise UserInputError(f"manifest {path} is {wide} text ({bom}): save it as UTF-8")
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        expected = "JSON lines or a JSON array expected"
        raise UserInputError(f"{path}:{line}: a NUL byte: the manifest is not text ({expected})")
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")  # utf-8-sig's BOM
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as text mode reads them
    if text.lstrip().startswith("["):
        bad_byte = _NOT_UTF8.search(text)
        if bad_byte:
            line, reason = _not_utf8(text, bad_byte)
            raise UserInputError(f"{path}:{line}: {reason}: save the manifest as UTF-8")
        rows = _array(path, text)
    else:
        rows = list(_jsonl_rows(text))
        first = rows[0][1] if rows else None
        if isinstance(first, BadRow) and first.kind == "invalid JSON" and _spread_objects(text):
            raise UserInputError(
                f"{path}:{rows[0][0]}: each row must be one JSON object on one line (JSON lines), but the "
                "objects here span several lines; write one per line, or put them in a JSON array [...]"
            )
    if not rows:
        raise UserInputError(f"manifest {path} is empty")
    return rows
