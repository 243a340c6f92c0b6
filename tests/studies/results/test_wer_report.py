"""`studies/results/wer_report.py`: the WER study's report states what was compared, including when SFT was not run."""

import pytest

from rlhf_asr.studies.results.report import Provenance, summarize
from rlhf_asr.studies.results.wer_report import METRICS, check_targets, render_markdown

PROVENANCE = Provenance.alone("raw.json", "results.md")

OPTIONS = {
    "num_train": 4,
    "num_test": 2,
    "test_voices": ["v"],
    "lora_r": 4,
    "learning_rate": 1e-3,
    "batch_size": 2,
    "seeds": [0, 1],
}


def _report(runs):
    summary = summarize(runs, METRICS)
    results = {
        "options": OPTIONS,
        "pairs": 3,
        "held_out_pairs": 1,
        "max_steps": 2,
        "summary": summary,
        "targets": check_targets(summary),
    }
    lines = render_markdown(results, PROVENANCE).splitlines()
    return results["targets"], [line for line in lines if line.startswith("- ORPO")][-1]


def test_targets_against_sft_and_without_it():
    base = {"variant": "base", "wer_test": 0.4}
    orpo = [{"variant": "orpo", "wer_test": 0.26}, {"variant": "orpo", "wer_test": 0.30}]
    targets, line = _report([base, *orpo])
    assert targets["orpo"]["no_worse_than_sft"] is None and line.endswith("SFT not run.")
    assert targets["orpo"]["meets_25pct_reduction"] and "30% lower than base (meets" in line
    targets, line = _report([base, *orpo, {"variant": "sft", "wer_test": 0.25}])
    assert targets["orpo"]["no_worse_than_sft"] is False
    assert line.endswith(
        "WORSE than SFT at equal steps (28.0 ± 2.8% against SFT 25.0 ± 0.0%, mean ± standard deviation over seeds)."
    )
    targets, line = _report([base, *orpo, {"variant": "sft", "wer_test": 0.35}])
    assert targets["orpo"]["no_worse_than_sft"] is True and "no worse than SFT at equal steps (28.0 ± 2.8%" in line


# --- the report is rendered from committed raw results, notes included ------------------------

import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

from rlhf_asr.commands import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
RUN_FOLDERS = sorted(
    str(folder.relative_to(ROOT)) for folder in ROOT.glob("docs/results/*") if (folder / "raw.json").is_file()
)


def _raw() -> dict:
    runs = [
        {
            "variant": "base",
            "seed": None,
            "train_s": 0.0,
            "wer_test": 0.4,
            "wer_test_voices": 0.5,
            "preference_accuracy": 0.2,
        }
    ]
    runs += [
        {
            "variant": v,
            "seed": s,
            "train_s": 10.0 + s,
            "wer_test": w + 0.01 * s,
            "wer_test_voices": w,
            "preference_accuracy": 0.7,
        }
        for v, w in (("sft", 0.3), ("orpo", 0.28))
        for s in (0, 1)
    ]
    return {
        "options": OPTIONS,
        "pairs": 3,
        "held_out_pairs": 1,
        "max_steps": 2,
        "runs": runs,
        "environment": {
            "date": "2026-01-02",
            "cpu_cores": 2,
            "machine": "x86_64",
            "torch": "t",
            "transformers": "x",
            "espeak_ng": "eSpeak NG 1.51",
        },
    }


def test_from_raw_renders_the_whole_report_without_training(tmp_path, monkeypatch, capsys):
    import rlhf_asr.studies.results.wer as study

    monkeypatch.setattr(study, "run_results", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps({**_raw(), "notes": ["- Earlier runs, not in this file: a note the raw file carries."]}))
    report = tmp_path / "docs" / "results.md"
    assert cli.main(["results", "--from_raw", str(raw), "--report", str(report)]) == 0
    text = report.read_text()
    assert "| base tiny.en | 40.0 ± 0.0 | 50.0 ± 0.0 |" in text
    assert "| ORPO (`--alpha 0.1`, scope all) | 28.5 ± 0.7 | 28.0 ± 0.0 |" in text  # recomputed from runs
    assert "## Notes" in text and "Measured on 2026-01-02" in text and "greedy `generate`" in text
    assert text.endswith("gives other text.\n- Earlier runs, not in this file: a note the raw file carries.\n")


def test_from_raw_bad_file_is_one_line(tmp_path, capsys):
    assert cli.main(["results", "--from_raw", str(tmp_path / "none.json"), "--report", str(tmp_path / "r.md")]) == 2
    assert "--from_raw" in capsys.readouterr().err


def test_default_outputs_go_to_ignored_folders():
    from rlhf_asr.studies.results.wer import ResultsOptions

    options = ResultsOptions()
    assert not options.report_path.startswith("docs") and not options.raw_path.startswith("docs")
    targets = re.findall(r"^(bench|results):.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert {name for name, _ in targets} == {"bench", "results"}
    assert all("docs/" not in recipe for _, recipe in targets)
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"/results_output/", "/bench_output/"} <= set(ignored)


def test_a_run_far_above_the_median_is_named_in_the_notes():
    from rlhf_asr.studies.results.wer_report import _outliers

    runs = [{"variant": "base", "seed": None, "wer_test": 0.4, "wer_test_voices": 0.3}]
    runs += [
        {"variant": "sft", "seed": s, "wer_test": w, "wer_test_voices": 0.2} for s, w in enumerate([0.2, 0.25, 0.9])
    ]
    lines = _outliers(runs)
    assert len(lines) == 1 and "sft seed 2" in lines[0] and "90.0%" in lines[0] and "held-out texts" in lines[0]
    assert _outliers(runs[:3]) == []


def test_the_report_says_whether_the_task_prompt_was_in_the_loss():
    summary = summarize([{"variant": "base", "wer_test": 0.4}, {"variant": "orpo", "wer_test": 0.3}], METRICS)
    results = {"pairs": 3, "held_out_pairs": 1, "max_steps": 2, "summary": summary, "targets": check_targets(summary)}
    # raw files from before the option: in the loss
    before = render_markdown({**results, "options": OPTIONS}, PROVENANCE)
    assert "frozen encoder, task prompt scored in the loss, lr" in before
    after = render_markdown({**results, "options": {**OPTIONS, "completion_only_loss": True}}, PROVENANCE)
    assert "frozen encoder, task prompt left out of the loss, lr" in after
    older = render_markdown({**results, "options": {**OPTIONS, "disable_prompt_loss": True}}, PROVENANCE)
    assert older == after  # raw files from before the rename record the older name


def test_committed_results_are_what_their_raw_files_render_to(tmp_path, monkeypatch):
    """docs/results.md is never edited by hand: the command it prints renders it again byte for byte."""
    import shutil

    from rlhf_asr.studies.results.report import regenerate

    committed = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    paths = re.search(r"`rlhf-asr results --from_raw (.+?) --report docs/results.md`", committed).group(1).split()
    for path in paths:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    monkeypatch.chdir(tmp_path)
    assert regenerate(paths, "docs/results.md") == committed


@pytest.mark.parametrize("folder", RUN_FOLDERS)
def test_each_run_folders_report_is_what_its_raw_file_renders_to(folder, tmp_path, monkeypatch):
    """docs/results/<run>/report.md, the studies in progress included, is never edited by hand either."""
    import shutil

    from rlhf_asr.studies.results.report import regenerate

    (tmp_path / folder).mkdir(parents=True)
    shutil.copy(ROOT / folder / "raw.json", tmp_path / folder / "raw.json")
    monkeypatch.chdir(tmp_path)
    rendered = regenerate([f"{folder}/raw.json"], f"{folder}/report.md")
    assert rendered == (ROOT / folder / "report.md").read_text(encoding="utf-8")


def test_raw_files_record_the_commit_that_ran(monkeypatch):
    """environment() names the code's own commit (docs/results/*/commit.txt comes from it); None without git."""
    import subprocess

    from rlhf_asr.studies.results import report

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    assert report.source_commit().split("+")[0] == head

    def no_git(*args, **kwargs):
        raise OSError("git: not found")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert report.source_commit() is None
