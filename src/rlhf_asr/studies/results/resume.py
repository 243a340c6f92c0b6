"""Continuing an interrupted results study from its raw file (`earlier_runs`).

A study of 3 seeds takes hours on 2 cores, and its raw file is saved after every model, so rerunning
the same command continues where it stopped: the runs already measured are taken from the raw file,
by (variant, seed). Runs of other options are never mixed in (the file is redone). The options that
only say which runs to do (`seeds`, `objectives`) may differ: more seeds continue the same study. An
option the raw file does not record (added since) counts as its default.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from rlhf_asr.studies.options import ResultsOptions, recorded_options

logger = logging.getLogger(__name__)
RUN_SELECTION = ("seeds", "objectives")  # which runs to do, not how: may differ between the parts of one study


def _study_options(options: dict) -> dict:
    return {name: value for name, value in options.items() if name not in RUN_SELECTION}


def earlier_runs(options: ResultsOptions, study: str) -> dict[tuple[str, int | None], list[dict]]:
    """The runs an interrupted `study` of the same options left in `options.raw_path`, by (variant, seed)."""
    path = Path(options.raw_path)
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    recorded = {**asdict(ResultsOptions()), **recorded_options(earlier.get("options", {}))}
    if earlier.get("study") != study or _study_options(recorded) != _study_options(asdict(options)):
        logger.info("%s holds another study's runs: starting over", path)
        return {}
    runs: dict[tuple[str, int | None], list[dict]] = {}
    for run in earlier.get("runs", []):
        runs.setdefault((run["variant"], run["seed"]), []).append(run)
    logger.info("continuing %s: %d runs already measured", path, len(runs))
    return runs
