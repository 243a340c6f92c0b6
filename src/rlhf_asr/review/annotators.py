"""Who may use the review page: `--annotators FILE` of `name token` lines, or one generated token.

A generated token is kept in the database, so the URL logged at start stays valid after a restart.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from rlhf_asr.errors import UserInputError

MIN_TOKEN_LENGTH = 12
NAME = re.compile(r"^[\w.@-]{1,64}$")
DEFAULT_ANNOTATOR = "annotator"


def read_annotators(path: str | Path) -> dict[str, str]:
    """token -> name, from lines `name token` (blank lines and `#` comments ignored)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"--annotators {path}: cannot read it ({error})") from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        where = f"--annotators {path}:{number}"
        if len(parts) != 2:
            raise UserInputError(f"{where}: expected `name token`, got {len(parts)} field(s)")
        name, token = parts
        if not NAME.match(name):
            raise UserInputError(f"{where}: annotator name {name!r}: letters, digits, '.', '@', '_' or '-' only")
        if len(token) < MIN_TOKEN_LENGTH:
            raise UserInputError(f"{where}: the token of {name} is shorter than {MIN_TOKEN_LENGTH} characters")
        if token in tokens:
            raise UserInputError(f"{where}: the token of {name} is also {tokens[token]}'s")
        if name in tokens.values():
            raise UserInputError(f"{where}: annotator {name} is listed twice")
        tokens[token] = name
    if not tokens:
        raise UserInputError(f"--annotators {path}: no `name token` line")
    return tokens


def new_token() -> str:
    return secrets.token_urlsafe(18)
