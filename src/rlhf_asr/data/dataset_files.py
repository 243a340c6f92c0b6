"""Parquet and arrow files given as data (one file or a glob), checked before `datasets` reads them.

`datasets` reports a glob that matches nothing as "At least one valid data file must be
specified", and a text file named .arrow or .parquet as pyarrow's "File is too small" or "magic
bytes not found", as tracebacks that name no file of a glob. Here each is one line naming the
pattern or the file. Only a parquet footer or an Arrow schema is read: cheap for any size.
"""

from __future__ import annotations

import glob
from pathlib import Path

from rlhf_asr.errors import UserInputError


def file_problem(builder: str, path: str) -> str | None:
    """Why `path` is no `builder` (parquet/arrow) file, or None; reads only its footer or schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if builder == "parquet":
            pq.read_schema(path)
            return None
        with open(path, "rb") as handle:
            try:
                pa.ipc.open_stream(handle)  # what save_to_disk writes; `datasets` tries it first too
                return None
            except pa.ArrowInvalid:
                handle.seek(0)
                pa.ipc.open_file(handle)  # the random-access form: its reason is the one shown
    except pa.ArrowInvalid as error:
        return f"not {'a parquet' if builder == 'parquet' else 'an Arrow'} file ({error})"
    except OSError as error:
        return f"cannot read it ({error.strerror or error})"
    return None


def data_files(builder: str, path: Path) -> list[str]:
    """The file, or the files a glob matches, each checked to be a `builder` file: one line naming the bad one."""
    if not any(char in str(path) for char in "*?["):
        if not path.is_file():
            raise UserInputError(f"{builder} file {path} not found")
        files = [str(path)]
    else:
        files = sorted(name for name in glob.glob(str(path), recursive=True) if Path(name).is_file())
        if not files:
            raise UserInputError(f"{builder} files {path}: the pattern matches no file")
    for name in files:
        problem = file_problem(builder, name)
        if problem:
            raise UserInputError(f"{name}: {problem}")
    return files
