"""`rlhf-asr results`: base vs SFT vs ORPO over seeds (speech WER, or hallucinations on non-speech); raw and report.

Both go to results_output/ by default; `--from_raw` renders the report again from a raw.json.
`--study objectives` compares every `train --loss` at equal steps (objectives_raw.json, objectives.md),
`--study objectives_nonspeech` the same on speech + no-speech pairs.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from rlhf_asr.commands.demo import NAMES, check_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderOptions:
    from_raw: list[str] | None = field(
        default=None,
        metadata={
            "help": "only render --report_path from these raw JSON files, one section each (e.g. "
            "docs/results/wer/raw.json docs/results/hallucination_tiny_en/raw.json): no training"
        },
    )


def build_parser():
    from rlhf_asr.commands.parser import options_parser
    from rlhf_asr.studies.options import ResultsOptions

    return options_parser(
        "rlhf-asr results",
        [ResultsOptions, RenderOptions],
        __doc__.splitlines()[0],
        names=NAMES,
        older={"report": "report_path", "raw": "raw_path", **ResultsOptions.older_names},
    )


# --study hallucination, silence, objectives(_nonspeech) write these file names instead of results.md and raw.json
STUDY_FILES = {
    "hallucination": {"report_path": "hallucination.md", "raw_path": "hallucination_raw.json"},
    "silence": {"report_path": "silence.md", "raw_path": "silence_raw.json"},
    "objectives": {"report_path": "objectives.md", "raw_path": "objectives_raw.json"},
    "objectives_nonspeech": {"report_path": "objectives_nonspeech.md", "raw_path": "objectives_nonspeech_raw.json"},
}


def _beside_output_dir(options):
    """--report_path / --raw_path left at their defaults follow --output_dir (results.md, raw.json in it)."""
    defaults = type(options)()
    changes = {}
    for name in ("report_path", "raw_path"):
        default = getattr(defaults, name)
        file_name = STUDY_FILES.get(options.study, {}).get(name, default.rsplit("/", 1)[-1])
        if getattr(options, name) == default and (
            options.output_dir != defaults.output_dir or options.study in STUDY_FILES
        ):
            changes[name] = f"{options.output_dir}/{file_name}"
    return dataclasses.replace(options, **changes) if changes else options


def parse_args(argv: list[str]):
    """(ResultsOptions, RenderOptions)."""
    from rlhf_asr.commands.parser import parse_options

    options, render, _ = parse_options(build_parser(), argv)
    return _beside_output_dir(options), render


def main(argv: list[str]) -> int:
    from rlhf_asr.data.synth_audio import INSTALL_HINT, espeak_available
    from rlhf_asr.errors import UserInputError
    from rlhf_asr.studies.options import NONSPEECH_STUDIES, OBJECTIVES_STUDIES, STUDIES, STUDY_OBJECTIVES, VARIANTS

    options, render = parse_args(argv)  # first: `--help` must not wait for torch
    if render.from_raw:
        from rlhf_asr.studies.results.report import regenerate

        regenerate(render.from_raw, options.report_path)
        log.info("wrote %s from %s", options.report_path, render.from_raw)
        return 0
    if options.study not in STUDIES:
        raise UserInputError(f"--study {options.study}: choose from {', '.join(STUDIES)}")
    unknown = sorted(set(options.variants) - set(VARIANTS))
    if unknown:
        raise UserInputError(f"--variants {' '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    if not options.objectives:
        raise UserInputError(f"--objectives: name at least one of {', '.join(STUDY_OBJECTIVES)}")
    from rlhf_asr.studies.results.objective_spec import parse_spec  # torch: after --help has printed

    for spec in options.objectives:
        parse_spec(spec, STUDY_OBJECTIVES)
    twice = sorted({spec for spec in options.objectives if options.objectives.count(spec) > 1})
    if twice:
        raise UserInputError(f"--objectives names {' '.join(twice)} twice: each is one run per seed")
    if options.nbest < 1:
        raise UserInputError(f"--nbest must be at least 1, not {options.nbest}")
    check_counts(options)
    if options.study in NONSPEECH_STUDIES and (options.nonspeech_train < 1 or options.nonspeech_test < 1):
        raise UserInputError(f"--study {options.study} needs --nonspeech_train and --nonspeech_test of at least 1")
    if not espeak_available():
        raise UserInputError(INSTALL_HINT)
    if options.study in OBJECTIVES_STUDIES:
        from rlhf_asr.studies.results.objectives import run_objectives

        run_objectives(options)
    elif options.study == "silence":
        from rlhf_asr.studies.results.silence import run_silence

        run_silence(options)
    elif options.study == "hallucination":
        from rlhf_asr.studies.results.hallucination import run_hallucination

        run_hallucination(options)
    else:
        from rlhf_asr.studies.results.wer import run_results

        run_results(options)
    return 0
