"""`rlhf-asr results`: base vs SFT vs ORPO (both rejected scopes) over seeds; raw.json and the report.

Both go to results_output/ by default; `--from_raw` renders the report again from a raw.json.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from rlhf_asr.commands.demo import NAMES, check_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderOptions:
    from_raw: str | None = field(
        default=None,
        metadata={"help": "only render --report_path from this raw.json (e.g. docs/results/raw.json): no training"},
    )


def build_parser():
    from rlhf_asr.commands.parser import options_parser
    from rlhf_asr.demo.options import ResultsOptions

    return options_parser(
        "rlhf-asr results",
        [ResultsOptions, RenderOptions],
        __doc__.splitlines()[0],
        names=NAMES,
        older={"report": "report_path", "raw": "raw_path"},
    )


def _beside_output_dir(options):
    """--report_path / --raw_path left at their defaults follow --output_dir (results.md, raw.json in it)."""
    defaults = type(options)()
    changes = {}
    for name in ("report_path", "raw_path"):
        default = getattr(defaults, name)
        if getattr(options, name) == default and options.output_dir != defaults.output_dir:
            changes[name] = f"{options.output_dir}/{default.rsplit('/', 1)[-1]}"
    return dataclasses.replace(options, **changes) if changes else options


def parse_args(argv: list[str]):
    """(ResultsOptions, RenderOptions)."""
    from rlhf_asr.commands.parser import parse_options

    options, render, _ = parse_options(build_parser(), argv)
    return _beside_output_dir(options), render


def main(argv: list[str]) -> int:
    from rlhf_asr.demo.corpus import INSTALL_HINT, espeak_available
    from rlhf_asr.errors import UserInputError
    from rlhf_asr.recipes.results import VARIANTS, regenerate, run_results

    options, render = parse_args(argv)
    if render.from_raw:
        regenerate(render.from_raw, options.report_path)
        log.info("wrote %s from %s", options.report_path, render.from_raw)
        return 0
    unknown = sorted(set(options.variants) - set(VARIANTS))
    if unknown:
        raise UserInputError(f"--variants {' '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    check_counts(options)
    if not espeak_available():
        raise UserInputError(INSTALL_HINT)
    run_results(options)
    return 0
