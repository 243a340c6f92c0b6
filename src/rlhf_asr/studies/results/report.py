"""The results studies' reports, rendered from their raw JSON files alone; what every study's report shares.

Every run's raw numbers go to a raw file (`raw.json`, `hallucination_raw.json`, `silence_raw.json`,
`objectives_raw.json`) and the report is rendered from those files alone (`regenerate`: one section
per file, by the file's "study"), so a committed report can be checked and regenerated without
training. The sections are `wer_report.py`, `hallucination_report.py`, `silence_report.py` and
`objectives_report.py`; here are the parts they share: where a section's numbers come from
(`Provenance`), where they were measured (`environment`, `measured_on`), the summary over seeds and
its cells, and how the model and the task prompt are named.
"""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rlhf_asr.data.synth_audio import espeak_version
from rlhf_asr.studies.options import OBJECTIVES_STUDIES, DemoOptions, recorded_options
from rlhf_asr.studies.stages import cpu_cores


def environment() -> dict:
    """Where the runs were measured: the numbers (times above all) depend on it."""
    import torch
    import transformers

    return {
        **measured_at(),  # date, cores, commit
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "espeak_ng": espeak_version(),
    }


def measured_at() -> dict:
    """One run's own provenance: an interrupted study continues later, maybe at another commit or on
    another machine, while `environment` names only the latest start."""
    return {"date": date.today().isoformat(), "cpu_cores": cpu_cores(), "commit": source_commit()}


def source_commit() -> str | None:
    """The git commit of the code that ran ("+changes" when the tree differs from it); None outside a checkout.

    docs/results/*/commit.txt is copied from here, so a run names its own commit rather than the one
    that later committed its output.
    """
    import subprocess

    folder = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder, capture_output=True, text=True
        )
    except OSError:  # no git on this machine
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def write_text(path: str | Path, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class Provenance:
    """Where a report section's numbers are read from, written into the section so that a reader can check it."""

    raw_path: str  # the raw JSON file this section is rendered from
    from_raw: tuple[str, ...]  # every raw file of the report, in order: the command that renders it all again
    report_path: str  # the report those files render to

    @classmethod
    def alone(cls, raw_path, report_path) -> Provenance:
        """A report of one study (what `rlhf-asr results` writes beside its raw file)."""
        return cls(str(raw_path), (str(raw_path),), str(report_path))

    def regenerate_command(self) -> str:
        return f"rlhf-asr results --from_raw {' '.join(self.from_raw)} --report {self.report_path}"

    def scope(self) -> str:
        """What that command renders, when more than the section it is written in."""
        return " (every section of this report)" if len(self.from_raw) > 1 else ""


def render_any(raw: dict, provenance: Provenance) -> str:
    """The report of any study, by the raw file's "study" (the WER study's files have none)."""
    if raw.get("study") in OBJECTIVES_STUDIES:
        from rlhf_asr.studies.results.objectives_report import render_objectives

        return render_objectives(raw, provenance)
    if raw.get("study") == "silence":
        from rlhf_asr.studies.results.silence_report import render_silence

        return render_silence(raw, provenance)
    if raw.get("study") == "hallucination":
        from rlhf_asr.studies.results.hallucination_report import render_hallucination

        return render_hallucination(raw, provenance)
    from rlhf_asr.studies.results.wer_report import render_from_raw

    return render_from_raw(raw, provenance)


def regenerate(raw_paths: str | Path | list, report_path: str | Path) -> str:
    """Writes the report rendered from one or more raw JSON files, one section each; no corpus, model or training."""
    sections = []
    raw_paths = [raw_paths] if isinstance(raw_paths, (str, Path)) else raw_paths
    every_file = tuple(map(str, raw_paths))
    for raw_path in raw_paths:
        try:
            raw = json.loads(Path(raw_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            from rlhf_asr.errors import UserInputError

            raise UserInputError(f"--from_raw {raw_path}: cannot read raw results ({error})") from None
        provenance = Provenance(str(raw_path), every_file, str(report_path))
        sections.append(render_any(raw, provenance))
    report = "\n".join(sections)
    write_text(report_path, report)
    return report


def summarize(runs: list[dict], metrics: tuple[str, ...]) -> dict[str, dict[str, tuple[float, float]]]:
    """variant -> metric -> (mean, sample standard deviation over seeds)."""
    summary: dict[str, dict] = {}
    for variant in dict.fromkeys(run["variant"] for run in runs):
        rows = [run for run in runs if run["variant"] == variant]
        summary[variant] = {}
        for metric in metrics:
            values = [row[metric] for row in rows if row.get(metric) is not None]
            if values:
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                summary[variant][metric] = (statistics.fmean(values), spread)
    return summary


def completeness(raw: dict) -> str:
    """'Complete', or how many of the planned runs an interrupted study has recorded so far."""
    if raw.get("complete"):
        return "Complete"
    return f"INCOMPLETE ({len(raw['runs'])} of {raw.get('planned_runs', '?')} planned runs recorded)"


def model_studied(opts: dict) -> str:
    """The model a study ran on; raw files from before `--model` was recorded ran on the default."""
    return opts.get("model", DemoOptions.model)


def base_row_name(opts: dict) -> str:
    """The untrained model's row: "base tiny.en" (the default model) or the model named."""
    model = model_studied(opts)
    return f"base {model}" if model == DemoOptions.model else f"base model ({model})"


def prompt_in_loss(opts: dict) -> str:
    """How the run scored the task prompt; raw files from before the option (`disable_prompt_loss` then) scored it."""
    left_out = recorded_options(opts).get("completion_only_loss")
    return f"task prompt {'left out of' if left_out else 'scored in'} the loss"


def cell(value: tuple[float, float] | None, percent: bool = True) -> str:
    """A table cell: mean ± standard deviation over seeds, in percent unless told otherwise; – when not run."""
    if value is None:
        return "–"
    mean, spread = value
    return f"{100 * mean:.1f} ± {100 * spread:.1f}" if percent else f"{mean:.0f} ± {spread:.0f}"


def measured_on(env: dict | None) -> list[str]:
    if not env:
        return ["- Where and when these runs were measured was not recorded."]
    return [
        f"- Measured on {env.get('date')} on a {env.get('cpu_cores')}-core {env.get('machine')} machine (torch "
        f"{env.get('torch')}, transformers {env.get('transformers')}, {env.get('espeak_ng') or 'espeak-ng'}). "
        "Training times depend on the machine's load; every run trains the same number of steps on the same pairs."
    ]
