"""`rlhf-asr train --help` in under a second: the help text, cached per sources and versions.

train's options subclass `transformers.TrainingArguments`, and importing it imports torch: 5-10 s
for a usage text. The text only changes when the modules that define the options change, when
transformers (which adds TrainingArguments' fields) changes, or with the terminal's width (argparse
wraps to it). The first `--help` builds it and stores it under a key made of exactly those; later
ones print the stored text without importing torch. `make` warms it once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

HELP_FLAGS = ("-h", "--help")


def wants_help(argv: Sequence[str]) -> bool:
    return any(item in HELP_FLAGS for item in argv)


def cache_dir() -> Path:
    """The project's cache (RLHF_ASR_CACHE, else ~/.cache/rlhf-asr), where bundled weights go too."""
    return Path(os.environ.get("RLHF_ASR_CACHE") or Path.home() / ".cache" / "rlhf-asr") / "help"


def help_key(sources: Sequence[Path]) -> str:
    """Hash of the option-defining sources, the transformers and Python versions, and the width."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    try:
        transformers = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        transformers = "absent"
    width = shutil.get_terminal_size().columns  # what argparse's HelpFormatter wraps to
    digest.update(f"{transformers} {sys.version_info[:2]} {width}".encode())
    return digest.hexdigest()[:24]


def cached_help(name: str, sources: Sequence[Path], build: Callable[[], str]) -> str:
    """The help text for `name`: read from the cache, or built by `build()` and stored atomically.

    A cache that cannot be written (read-only home) only costs speed: the text is built each time.
    """
    path = cache_dir() / f"{name}-{help_key(sources)}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False) as file:
            file.write(text)
        os.replace(file.name, path)
    except OSError:
        pass
    return text
