"""`rlhf-asr results --study objectives`: the study end to end on a tiny random model (and continued), and
its report from hand-made raw files, with the target met and missed."""

from __future__ import annotations

import json

import pytest

from rlhf_asr.studies.results.objectives_report import render_objectives
from rlhf_asr.studies.results.report import Provenance, regenerate
from study_fixtures import fake_corpus, tiny_results_options


@pytest.mark.slow
def test_study_runs_every_objective_asked_then_continues_from_its_raw_file(tmp_path, monkeypatch):
    import rlhf_asr.studies.results.objectives as study
    import rlhf_asr.studies.results.wer as wer

    monkeypatch.setattr(wer, "synthesize_corpus", fake_corpus)
    options = tiny_results_options(
        tmp_path, "objectives", "objectives_raw.json", "objectives.md", objectives=["sft", "mwer"], nbest=2
    )
    out = tmp_path / "study"
    study.run_objectives(options)

    raw = json.loads((out / "objectives_raw.json").read_text())
    assert [run["variant"] for run in raw["runs"]] == ["base", "sft", "mwer"]
    assert raw["complete"] and raw["max_steps"] >= 1 and raw["kbest_rows"] >= 1
    assert raw["weights"]["mwer"]["ce_weight"] == 0.01 and raw["weights"]["sft"] == {}  # the trainer's defaults
    for run in raw["runs"]:
        for column in ("wer_test", "wer_test_voices", "preference_accuracy"):
            assert 0 <= run[column] <= 10, (run["variant"], column)
    # each trained run names its own commit: a study continued later may run other code
    assert all(run["measured"]["commit"] == raw["environment"]["commit"] for run in raw["runs"][1:])
    rows = [json.loads(line) for line in (out / "corpus" / "kbest2.jsonl").read_text().splitlines()]
    assert len(rows) == raw["kbest_rows"] and all(1 <= len(row["candidates"]) <= 2 for row in rows)
    report = (out / "objectives.md").read_text()
    assert report == render_objectives(raw, Provenance.alone(out / "objectives_raw.json", out / "objectives.md"))
    assert "| MWER (`--loss mwer`, K-best rows) |" in report and "cannot be checked" in report

    def no_training(*args, **kwargs):
        raise AssertionError("an earlier run was trained again")

    monkeypatch.setattr(study, "timed_training", no_training)
    again = study.run_objectives(options)  # the same command: every run is taken from the raw file
    assert again["runs"] == raw["runs"]


@pytest.mark.slow
def test_the_nonspeech_study_trains_on_speech_and_nonspeech_and_scores_the_nonspeech_clips(tmp_path, monkeypatch):
    import rlhf_asr.studies.results.hallucination as hallucination
    import rlhf_asr.studies.results.objectives as study

    monkeypatch.setattr(hallucination, "synthesize_corpus", fake_corpus)
    options = tiny_results_options(
        tmp_path, "objectives_nonspeech", "objectives_nonspeech_raw.json", "objectives_nonspeech.md",
        objectives=["dpo:rpo_alpha=1", "mwer"], nbest=2, nonspeech_train=2, nonspeech_test=2,
    )  # fmt: skip
    out = tmp_path / "study"
    raw = study.run_objectives(options)

    variants = [run["variant"] for run in raw["runs"]]
    assert raw["study"] == "objectives_nonspeech" and variants == ["base", "dpo:rpo_alpha=1", "mwer"]
    assert raw["weights"]["dpo:rpo_alpha=1"]["rpo_alpha"] == 1.0 and (out / "dpo_rpo_alpha1_seed0").is_dir()
    pairs = [json.loads(line) for line in (out / "corpus" / "pairs_nonspeech.jsonl").read_text().splitlines()]
    assert raw["pairs"] == len(pairs) and raw["nonspeech_pairs"] == sum(pair["chosen"] == "" for pair in pairs)
    # a random model writes something on every clip: both training non-speech clips are pairs and K-best rows
    assert raw["nonspeech_pairs"] == 2
    rows = [json.loads(line) for line in (out / "corpus" / "kbest2.jsonl").read_text().splitlines()]
    assert len(rows) == raw["kbest_rows"] and sum(row["reference"] == "" for row in rows) == 2
    for run in raw["runs"]:
        assert run["nonspeech_output_rate"] in (0.0, 0.5, 1.0) and 0 <= run["hallucination_rate"] <= 1
    report = (out / "objectives_nonspeech.md").read_text()
    assert report.startswith("## Objectives at equal steps, speech + no-speech pairs")
    assert "**Held-out non-speech** (2 clips" in report and "| DPO (`--loss dpo --rpo_alpha 1`) |" in report


def _raw(ours: float, spread: float = 0.005) -> dict:
    runs = [{"variant": "base", "seed": None, "wer_test": 0.40, "wer_test_voices": 0.50, "preference_accuracy": 0.1}]
    for seed, step in zip((0, 1, 2), (-1, 0, 1)):
        for objective, wer in (("sft", 0.30), ("dpo", ours), ("mwer", 0.30)):
            value = wer + step * spread
            runs.append(
                {
                    "variant": objective,
                    "seed": seed,
                    "train_s": 100.0 + seed,
                    "wer_test": value,
                    "wer_test_voices": value + 0.05,
                    "preference_accuracy": 0.6,
                }
            )
    options = {"model": "tiny.en", "seeds": [0, 1, 2], "nbest": 4, "learning_rate": 1e-3, "batch_size": 8}
    return {
        "study": "objectives",
        "options": {**options, "lora_r": 16, "completion_only_loss": True},
        "pairs": 57,
        "kbest_rows": 120,
        "held_out_pairs": 20,
        "max_steps": 24,
        "weights": {"sft": {}, "dpo": {"beta": 0.1, "label_smoothing": 0.0}, "mwer": {"ce_weight": 0.01}},
        "runs": runs,
        "complete": True,
    }


def _render(raw: dict) -> str:
    return render_objectives(raw, Provenance.alone("objectives_raw.json", "objectives.md"))


def test_the_target_is_met_when_an_objective_beats_sft_by_five_percent_with_the_spreads_apart():
    report = _render(_raw(0.27))  # 10% lower on texts, 8.6% on voices, spreads 0.5 points
    assert "MET by DPO (`--loss dpo`) on held-out texts and held-out voices." in report
    assert "| DPO (`--loss dpo`) | 27.0 ± 0.5 | -10.0% (met) |" in report
    assert "| MWER (`--loss mwer`, K-best rows) | 30.0 ± 0.5 | +0.0% (spreads overlap) |" in report
    assert "- K = 4 hypotheses per K-best row (MWER; 120 rows)" in report
    assert "- DPO (`--loss dpo`): beta 0.1, label_smoothing 0.0" in report and "learning rate 0.001" in report


def test_the_target_is_not_met_when_the_gain_is_small_or_the_spreads_overlap():
    assert "NOT MET by any objective" in _render(_raw(0.29))  # 3% lower: under the target
    overlapping = _render(_raw(0.27, spread=0.03))  # 10% lower, but the seed spreads overlap
    assert "NOT MET by any objective" in overlapping and "-10.0% (spreads overlap)" in overlapping


def test_one_seed_is_not_called_apart_or_overlapping():
    raw = _raw(0.27)
    raw["runs"] = [run for run in raw["runs"] if run["seed"] in (None, 0)]  # base, then seed 0 of each
    report = _render(raw | {"complete": False, "planned_runs": 10})
    assert "INCOMPLETE (4 of 10 planned runs recorded)" in report
    assert "| DPO (`--loss dpo`) | 26.5 ± 0.0 | -10.2% (fewer than 2 seeds: no spread) |" in report
    assert "cannot be checked: fewer than 2 seeds" in report


def test_the_report_renders_beside_the_other_studies_from_raw_files_alone(tmp_path):
    path = tmp_path / "objectives_raw.json"
    path.write_text(json.dumps(_raw(0.27)))
    report = regenerate([path], tmp_path / "r.md")
    assert report.startswith("## Objectives at equal steps (tiny.en)") and f"--from_raw {path}" in report
    assert (tmp_path / "r.md").read_text() == report


def test_the_command_names_its_files_and_refuses_an_unknown_objective():
    from rlhf_asr.commands import results
    from rlhf_asr.errors import UserInputError

    options, _ = results.parse_args(["--study", "objectives", "--objectives", "sft", "dpo", "--nbest", "3"])
    assert (options.raw_path, options.report_path) == (
        "results_output/objectives_raw.json",
        "results_output/objectives.md",
    )
    assert (options.objectives, options.nbest) == (["sft", "dpo"], 3)
    with pytest.raises(UserInputError, match="--objectives kto: choose from sft, orpo, dpo, simpo, mwer"):
        results.main(["--study", "objectives", "--objectives", "sft", "kto"])


def test_a_spec_run_is_checked_against_sft_and_named_by_its_flags():
    raw = _raw(0.27)
    for run in raw["runs"]:
        run["variant"] = "dpo:rpo_alpha=1" if run["variant"] == "dpo" else run["variant"]
    raw["weights"]["dpo:rpo_alpha=1"] = raw["weights"].pop("dpo") | {"rpo_alpha": 1.0}
    report = _render(raw)
    assert "MET by DPO (`--loss dpo --rpo_alpha 1`) on held-out texts and held-out voices." in report
    assert "| DPO (`--loss dpo --rpo_alpha 1`) | 27.0 ± 0.5 | -10.0% (met) |" in report
    assert "- DPO (`--loss dpo --rpo_alpha 1`): beta 0.1, label_smoothing 0.0, rpo_alpha 1.0" in report
