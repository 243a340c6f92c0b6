"""`--config FILE`: options from a YAML/JSON mapping, expanded in place before parsing (command line wins)."""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_asr.errors import UserInputError


def config_file_args(path: str) -> list[str]:
    """A YAML/JSON mapping of option -> value, as command-line arguments."""
    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"--config {path}: file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserInputError(f"--config {path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise UserInputError(f"--config {path}: cannot read ({error.strerror or error})") from None
    try:
        if file.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as error:  # any parse error is the user's file
        raise UserInputError(f"--config {path}: cannot parse ({error})") from None
    if not isinstance(values, dict):
        raise UserInputError(f"--config {path}: expected a mapping of option names to values")
    args: list[str] = []
    for key, value in values.items():
        if not isinstance(key, str) or not key.strip() or key.startswith("-"):
            raise UserInputError(f"--config {path}: {key!r} is not an option name (write e.g. learning_rate: 1e-4)")
        items = value if isinstance(value, list) else [value]
        args += [f"--{key}", *[str(item) for item in items]]
    return args


def split_config_flag(argv: list[str]) -> list[str]:
    """Expands `--config FILE` in place; later (command-line) options override the file's."""
    if "--config" not in argv:
        return argv
    at = argv.index("--config")
    if at + 1 >= len(argv):
        raise UserInputError("--config needs a file path")
    return config_file_args(argv[at + 1]) + argv[:at] + argv[at + 2 :]


def config_path(argv: list[str]) -> str | None:
    at = argv.index("--config") if "--config" in argv else -1
    return argv[at + 1] if 0 <= at < len(argv) - 1 else None
