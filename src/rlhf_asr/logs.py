"""One logging set-up for every command: `[rlhf-asr] message` on stderr.

Library modules log through `logging.getLogger(__name__)` and never configure handlers; the CLI
calls `setup_logging` once, so a user's own program that imports `rlhf_asr` keeps its own logging.
`--quiet` shows warnings and errors only, `--verbose` adds debug lines and the third-party
libraries' warnings (transformers, PEFT), which are otherwise kept to errors.
"""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "[rlhf-asr] %(message)s"
VERBOSE_FORMAT = "[rlhf-asr] %(levelname)s %(name)s: %(message)s"
# Libraries whose info/warning chatter (progress notes, deprecations aimed at their own callers)
# is not the user's business at the default verbosity.
# Names the library verbosity variables this tool set (not the user), in this process or a parent.
_SET_BY_US = "RLHF_ASR_SET_VERBOSITY"
QUIET_LIBRARIES = ("transformers", "peft", "accelerate", "datasets", "urllib3", "matplotlib", "PIL")


def setup_logging(verbosity: int = 0) -> None:
    """verbosity: -1 quiet (warnings and errors), 0 default (info), 1 verbose (debug, library warnings)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(VERBOSE_FORMAT if verbosity > 0 else FORMAT))
    root = logging.getLogger("rlhf_asr")
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Records still propagate to the root logger, which has no handler in the CLI's own process (no
    # line twice), so pytest's caplog and an embedding program's handlers see them too.
    root.propagate = True
    library_level = logging.WARNING if verbosity > 0 else logging.ERROR
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    # transformers and datasets set their logger's level again when they are first imported, which in
    # a command happens after this call: their own variables make that level ours. One the user set
    # wins; one this tool set earlier (here or in a parent process) follows today's verbosity.
    ours = set(filter(None, os.environ.get(_SET_BY_US, "").split(",")))
    for variable in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY"):
        if variable not in os.environ or variable in ours:
            os.environ[variable] = logging.getLevelName(library_level).lower()
            ours.add(variable)
    os.environ[_SET_BY_US] = ",".join(sorted(ours))
