"""`rlhf-asr results --study hallucination`: the study end to end on a tiny random model, and its report from raw."""

from __future__ import annotations

import json

import pytest

from rlhf_asr.studies.results.hallucination_report import check_targets, render_hallucination
from rlhf_asr.studies.results.report import Provenance, regenerate, summarize
from study_fixtures import fake_corpus, tiny_results_options

TRAINED = ["orpo_nonspeech", "orpo_nonspeech_guard", "sft_nonspeech", "sft_nonspeech_guard", "orpo"]


@pytest.mark.slow
def test_study_writes_every_row_and_column_and_its_report_comes_from_raw_alone(tmp_path, monkeypatch):
    import rlhf_asr.studies.results.hallucination as study

    monkeypatch.setattr(study, "synthesize_corpus", fake_corpus)
    options = tiny_results_options(
        tmp_path,
        "hallucination",
        "hallucination_raw.json",
        "hallucination.md",
        nonspeech_train=2,
        nonspeech_test=2,
        loop_pairs=True,  # with their ablation
    )
    out, model_dir = tmp_path / "study", options.model
    study.run_hallucination(options)

    raw = json.loads((out / "hallucination_raw.json").read_text())
    assert [run["variant"] for run in raw["runs"]] == ["base", "guard", *TRAINED, "orpo_nonspeech_no_loops"]
    assert raw["complete"] and raw["max_steps"] >= 1
    assert raw["loop_pairs"] == 4  # one per training text
    for run in raw["runs"]:
        for column in ("wer_test", "wer_test_voices", "hallucination_rate", "repetition_rate"):
            assert 0 <= run[column] <= 10, (run["variant"], column)
    # the no-speech pairs are the training clips the base model wrote anything for
    pairs = [json.loads(line) for line in (out / "corpus" / "pairs_nonspeech.jsonl").read_text().splitlines()]
    assert sum(pair["chosen"] == "" for pair in pairs) == raw["nonspeech_pairs"]
    assert raw["clips"]["test"]["kinds"] and not set(raw["clips"]["test"]["kinds"]) & set(
        raw["clips"]["train"]["kinds"]
    )
    report = (out / "hallucination.md").read_text()
    provenance = Provenance.alone(out / "hallucination_raw.json", out / "hallucination.md")
    assert report == render_hallucination(raw, provenance)
    assert f"from_raw {out / 'hallucination_raw.json'} --report {out / 'hallucination.md'}`" in report
    for name in (f"| base model ({model_dir}) |", "| base + decode-time guard |", "speech pairs only |", "rate (%)"):
        assert name in report
    assert "loop pairs, + decode-time guard |" in report
    # the guarded rows are the trained models behind the guard: no training of their own
    assert all("train_s" not in run for run in raw["runs"] if run["variant"].endswith("_guard"))
    assert "### Targets" in report


def _render(raw: dict) -> str:
    return render_hallucination(raw, Provenance.alone("h.json", "h.md"))


def _run(variant, seed, wer, hallucination, repetition=0.0):
    return {
        "variant": variant,
        "seed": seed,
        "wer_test": wer,
        "wer_test_voices": wer,
        "hallucination_rate": hallucination,
        "repetition_rate": repetition,
    }


def _raw(ours_hallucination: float, ours_wer: float) -> dict:
    runs = [_run("base", None, 0.30, 1.0), _run("guard", None, 0.31, 0.6)]
    for seed in (0, 1, 2):
        runs += [
            _run("orpo_nonspeech", seed, ours_wer + 0.01 * seed, ours_hallucination),
            _run("sft_nonspeech", seed, 0.25, 0.10),
            _run("orpo", seed, 0.24 + 0.01 * seed, 0.9),
        ]
    clips = {"count": 5, "kinds": ["silence"], "durations": [1.0]}
    return {
        "study": "hallucination",
        "options": {
            "num_train": 8,
            "num_test": 4,
            "lora_r": 2,
            "learning_rate": 1e-3,
            "batch_size": 4,
            "seeds": [0, 1, 2],
        },
        "clips": {"train": clips, "test": {**clips, "kinds": ["hum"], "durations": [20.0]}},
        "guard": {"no_speech_threshold": 0.6, "logprob_threshold": -1.0},
        "speech_pairs": 6,
        "nonspeech_pairs": 5,
        "max_steps": 9,
        "runs": runs,
    }


def test_targets_met_when_hallucinations_fall_fivefold_at_the_speech_only_wer():
    checks = check_targets(summarize(_raw(0.05, 0.245)["runs"], ("wer_test", "wer_test_voices", "hallucination_rate")))
    assert [check["met"] for check in checks] == [True, True, True, True]
    report = _render(_raw(0.05, 0.245))
    assert "hallucination rate at most 0.2x base: met (5.0% against base 100.0% (0.05x))" in report
    assert "NOT MET" not in report
    # a run from before the option had the prompt in the loss, no longer the default: the rerun says so
    rerun = "--study hallucination --num_train 8 --num_test 4 --completion_only_loss False --seeds 0 1 2`"
    assert rerun in report and "frozen encoder, task prompt scored in the loss, lr" in report
    with_loops = _raw(0.05, 0.245)
    with_loops["options"].update(loop_pairs=True, disable_prompt_loss=True)
    report = _render(with_loops)
    assert (
        "`rlhf-asr results --study hallucination --num_train 8 --num_test 4 --loop_pairs True --seeds 0 1 2`" in report
    )
    assert "frozen encoder, task prompt left out of the loss, lr" in report


def test_targets_not_met_are_named_from_the_raw_numbers():
    report = _render(_raw(0.3, 0.40))
    assert "hallucination rate at most 0.2x base: NOT MET (30.0% against base 100.0% (0.30x))" in report
    assert "speech WER (held-out texts) no worse than speech-only ORPO: NOT MET" in report
    assert "ORPO's hallucination rate no worse than SFT's: NOT MET (30.0% against SFT 10.0%)" in report
    assert "| base + decode-time guard | 31.0 ± 0.0 | 31.0 ± 0.0 | 60.0 ± 0.0 |" in report


def test_an_unstable_model_gets_no_wider_wer_allowance():
    """One seed looping (WER 1.77) spreads the mean so far that its own spread would excuse it."""
    raw = _raw(0.05, 0.245)
    raw["runs"][2] = _run("orpo_nonspeech", 0, 1.77, 0.05, repetition=0.024)
    report = _render(raw)
    verdict = "NOT MET (76.3% against speech-only 25.0% (allowed up to 26.0%))"
    assert f"speech WER (held-out texts) no worse than speech-only ORPO: {verdict}" in report


def test_runs_with_loops_are_named_with_their_wer():
    raw = _raw(0.05, 0.245)
    assert "repetition loop" not in _render(raw)
    raw["runs"][2] = _run("orpo_nonspeech", 0, 1.77, 0.05, repetition=0.024)
    report = _render(raw)
    assert "loop in their held-out outputs: ORPO (`--alpha 0.1`), speech + non-speech pairs seed 0: 2.4% of " in report
    assert "WER held-out texts 177.0%, held-out voices 177.0%." in report


def test_from_raw_renders_both_studies_as_sections(tmp_path):
    from test_wer_report import _raw as wer_raw

    (tmp_path / "raw.json").write_text(json.dumps(wer_raw()))
    (tmp_path / "h.json").write_text(json.dumps(_raw(0.05, 0.245)))
    report = regenerate([tmp_path / "raw.json", tmp_path / "h.json"], tmp_path / "results.md")
    assert report.startswith("# Results: does ORPO make transcripts better?")
    assert "\n## Hallucinations: does ORPO teach Whisper to stay silent?" in report


def test_study_writes_its_own_files_beside_the_output_dir():
    from rlhf_asr.commands.results import parse_args

    options, _ = parse_args(["--study", "hallucination"])
    assert (options.raw_path, options.report_path) == (
        "results_output/hallucination_raw.json",
        "results_output/hallucination.md",
    )
    options, _ = parse_args(["--study", "hallucination", "--output_dir", "x"])
    assert options.raw_path == "x/hallucination_raw.json"
    assert parse_args([])[0].raw_path == "results_output/raw.json"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--study", "quiet"], "--study quiet: choose from wer, hallucination, silence"),
        (["--study", "hallucination", "--nonspeech_test", "0"], "--nonspeech_train and --nonspeech_test"),
    ],
)
def test_bad_study_options_are_one_line_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    import rlhf_asr.data.synth_audio as synth_audio
    from rlhf_asr.commands import cli

    monkeypatch.setattr(
        synth_audio, "espeak_available", lambda: (_ for _ in ()).throw(AssertionError("checked espeak"))
    )
    assert cli.main(["results", "--output_dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_trained_models_behind_the_guard_get_their_own_rows_and_ratio_line_not_the_targets():
    raw = _raw(0.3, 0.245)
    for seed in (0, 1, 2):
        raw["runs"].append(_run("orpo_nonspeech_guard", seed, 0.25, 0.1 + 0.05 * seed))
    report = _render(raw)
    # the target is judged on ORPO alone ...
    assert "hallucination rate at most 0.2x base: NOT MET (30.0% against base 100.0% (0.30x))" in report
    # ... and ORPO behind the guard is its own line
    assert "hallucination rate at most 0.2x base, ORPO + decode-time guard: met (15.0% against base" in report
    row = "| ORPO (`--alpha 0.1`), speech + non-speech pairs, + decode-time guard |"
    assert row + " 25.0 ± 0.0 | 25.0 ± 0.0 | 15.0 ± 5.0 | 0.0 ± 0.0 | – |" in report
    assert "ORPO (`--alpha 0.1`), speech + non-speech pairs, + decode-time guard 0.15x" in report
    assert "decoded again from audio behind the same guard" in report
    assert "decoded again from audio behind the same guard" not in _render(_raw(0.3, 0.245))


def test_the_base_row_names_the_model_studied():
    raw = _raw(0.05, 0.245)
    assert "| base tiny.en |" in _render(raw)  # raw files that did not record it: the default
    raw["options"]["model"] = "base"
    assert "| base model (base) |" in _render(raw)


def test_each_section_names_its_own_raw_file_and_model(tmp_path):
    from test_wer_report import _raw as wer_raw

    other = _raw(0.05, 0.245)
    other["options"]["model"] = "base"
    for name, raw in (("raw.json", wer_raw()), ("h.json", _raw(0.05, 0.245)), ("h_base.json", other)):
        (tmp_path / name).write_text(json.dumps(raw))
    paths = [str(tmp_path / name) for name in ("raw.json", "h.json", "h_base.json")]
    report = regenerate(paths, tmp_path / "results.md")
    command = f"`rlhf-asr results --from_raw {' '.join(paths)} --report {tmp_path / 'results.md'}`"
    assert report.count(command) == 3  # every section says how to render the whole report again
    default, second = report.split("\n## Hallucinations")[1:]
    assert default.startswith(": does ORPO teach Whisper") and f"from `{paths[1]}`" in default
    assert second.startswith(" with base: does ORPO teach Whisper") and f"from `{paths[2]}`" in second
    assert "--model base" in second and "--model" not in default.split("Training pairs")[0]
    assert f"raw per-run results in `{paths[0]}`" in report
