"""The silence study's pieces that need no model: long recordings and their gap rule, and the report
rendered from a raw file (studies/results/silence.py, silence_report.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

from rlhf_asr.studies.results.report import regenerate
from rlhf_asr.studies.results.silence import gap_output, long_recordings, long_scores
from rlhf_asr.studies.results.silence_report import check_targets


def test_text_counts_in_the_gap_only_when_the_segment_lies_inside_it():
    gap = (3.0, 40.0)
    assert gap_output([(0.0, 2.9, "hello"), (10.0, 12.0, "you")], gap)
    assert not gap_output([(0.0, 2.9, "hello"), (10.0, 12.0, "  ")], gap)  # whitespace is silence
    assert not gap_output([(0.0, 6.0, "hello there")], gap)  # the speech before the gap, running on
    assert gap_output([(20.0, 21.0, ".")], gap)  # "." is output
    assert gap_output([(30.0, 40.4, "you")], gap)  # ends within the margin of the gap's end
    # a window that starts in the gap times the speech after it from the window's start (Whisper's first
    # timestamp is at most 1 s in): that segment runs past the gap and is the real speech, not gap output
    assert not gap_output([(0.0, 2.9, "hello"), (30.0, 46.0, "the words after the gap")], gap)


def test_long_scores_count_inserted_words_and_keep_the_segments():
    files = [{"gap": (2.0, 40.0), "text": "red green"}, {"gap": (2.0, 40.0), "text": "blue black"}]
    decoded = [
        [(0.0, 1.9, "red"), (30.0, 46.0, "thank you green")],  # 2 words invented, glued to the real speech
        [(0.0, 1.9, "blue"), (41.0, 43.0, "black")],
    ]
    scores = long_scores(decoded, files)
    assert scores["gap_output_rate"] == 0.0  # no segment inside a gap
    assert scores["insertion_rate_long"] == pytest.approx(2 / 4) and scores["wer_long"] == pytest.approx(2 / 4)
    assert scores["segments"][1] == [(0.0, 1.9, "blue"), (41.0, 43.0, "black")]


def test_long_recordings_place_the_gap_between_the_speech(tmp_path):
    def clip(name, seconds, text=""):
        soundfile.write(tmp_path / name, np.zeros(int(16000 * seconds), np.float32), 16000)
        return SimpleNamespace(path=name, text=text)

    corpus = SimpleNamespace(
        folder=tmp_path,
        splits={
            "test_voices": [clip("a.wav", 2.0, "one"), clip("b.wav", 3.0, "two")],
            "nonspeech_test": [clip("n0.wav", 15.0), clip("n1.wav", 20.0)],
        },
    )
    (file,) = long_recordings(corpus, tmp_path / "long")
    assert file["gap"] == (2.0, 37.0) and file["text"] == "one two"
    assert soundfile.info(file["path"]).duration == 40.0


def test_padded_speech_keeps_its_text_fits_the_window_and_is_seeded(tmp_path):
    from rlhf_asr.studies.corpus import Utterance
    from rlhf_asr.studies.nonspeech import PADDED_SECONDS, add_padded

    def write(name, samples):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(tmp_path / name, samples.astype(np.float32), 16000)
        return name

    tone = 0.5 * np.sin(np.arange(16000 * 2) * 2 * np.pi * 440 / 16000)
    speech = [Utterance(f"words {i}", "v", 160, write(f"train/{i}.wav", tone), 2.0, "train") for i in range(4)]
    fillers = [Utterance("", "tone", 0, write("nonspeech_train/0.wav", tone), 2.0, "nonspeech_train")]
    held_out = [Utterance("", "hum", 0, write("nonspeech_test/0.wav", tone), 2.0, "nonspeech_test")]
    corpus = SimpleNamespace(
        folder=tmp_path,
        splits={"train": speech, "nonspeech_train": fillers, "nonspeech_test": held_out},
        manifest=lambda split: tmp_path / f"{split}.jsonl",
    )
    name = add_padded(corpus)
    rows = corpus.splits[name]
    assert name == "train_padded" and [u.text for u in rows] == [u.text for u in speech]
    assert all(u.duration == pytest.approx(2.0 + PADDED_SECONDS) for u in rows)  # 27 s: within the 30 s window
    assert all(soundfile.info(tmp_path / u.path).duration == pytest.approx(u.duration) for u in rows)
    assert len((tmp_path / "train_padded.jsonl").read_text().splitlines()) == 4
    first = (tmp_path / rows[1].path).read_bytes()
    assert add_padded(corpus) == name and (tmp_path / rows[1].path).read_bytes() == first  # seeded: a rerun agrees


def test_speech_after_a_pause_starts_after_15_s_of_held_out_sound(tmp_path):
    from rlhf_asr.studies.corpus import Utterance
    from rlhf_asr.studies.nonspeech import PAUSE_SECONDS, add_after_pause

    def write(name, samples):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(tmp_path / name, samples.astype(np.float32), 16000)
        return name

    speech = [Utterance(f"words {i}", "v", 160, write(f"v/{i}.wav", np.full(16000, 0.5)), 1.0, "test_voices")
              for i in range(3)]  # fmt: skip
    hums = [Utterance("", "hum", 0, write(f"n/{i}.wav", np.full(8000, -0.25 * (i + 1))), 0.5, "nonspeech_test")
            for i in range(2)]  # fmt: skip
    corpus = SimpleNamespace(
        folder=tmp_path,
        splits={"test_voices": speech, "nonspeech_test": hums},
        manifest=lambda split: tmp_path / f"{split}.jsonl",
    )
    name = add_after_pause(corpus)
    rows = corpus.splits[name]
    assert [u.text for u in rows] == ["words 0", "words 1", "words 2"]
    audio, _ = soundfile.read(tmp_path / rows[2].path, dtype="float32")
    pause = round(PAUSE_SECONDS * 16000)
    assert audio.size == pause + 16000 and rows[2].duration == PAUSE_SECONDS + 1.0
    assert np.allclose(audio[:pause], -0.25, atol=1e-4)  # clip 2 after hum 0 (in turn), looped to 15 s
    assert np.allclose(audio[pause:], 0.5, atol=1e-4)  # then the speech, whole


def test_after_pause_scores_count_clips_with_nothing_written():
    from rlhf_asr.studies.results.silence import AFTER_PAUSE, pause_scores

    corpus = SimpleNamespace(texts=lambda split: ["red green", "blue black"] if split == AFTER_PAUSE else [])
    scores = pause_scores(corpus, ["red green", "  "])
    assert scores == {"wer_after_pause": pytest.approx(0.5), "no_output_after_pause": 0.5}
    assert pause_scores(corpus, [".", "blue black"])["no_output_after_pause"] == 0.0  # "." is output


def test_runs_measured_before_the_after_pause_clips_get_them_once(tmp_path, monkeypatch):
    from rlhf_asr.evaluation import faster_whisper_eval
    from rlhf_asr.studies.results import silence

    decoded = []
    monkeypatch.setattr(faster_whisper_eval, "faster_whisper_model", lambda folder, device: folder)
    monkeypatch.setattr(silence, "pipeline_texts", lambda folder, paths: decoded.append(folder) or ["a b"] * len(paths))
    monkeypatch.setattr(silence, "faster_whisper_texts", lambda fw, paths: decoded.append(fw) or [""] * len(paths))
    monkeypatch.setattr(silence, "pick_threads", lambda n: None)
    corpus = SimpleNamespace(
        folder=tmp_path, splits={silence.AFTER_PAUSE: [SimpleNamespace(path="x.wav")]}, texts=lambda split: ["a b"]
    )
    run = json.loads(json.dumps(_raw({"orpo_eot": 0.1})["runs"][1]))  # as read back: no dict shared by decoders
    silence.rescore_after_pause(run, tmp_path / "merged", tmp_path, corpus)
    assert decoded == [tmp_path / "merged", tmp_path / "ct2_float32", tmp_path / "ct2_int8"]
    assert run["decoders"]["pipeline"]["no_output_after_pause"] == 0.0
    assert run["decoders"]["fw_int8"]["no_output_after_pause"] == 1.0 and "wer_test" in run["decoders"]["fw_int8"]
    silence.rescore_after_pause(run, tmp_path / "merged", tmp_path, corpus)
    guard = {"variant": "guard", "seed": None, "decoders": {"guard": {}}}
    silence.rescore_after_pause(guard, tmp_path, tmp_path, corpus)
    assert len(decoded) == 3  # measured already; the guard has no pipeline or export


def _raw(rates: dict[str, float]) -> dict:
    def run(variant, seed, rate, wer=0.3):
        scores = {"nonspeech_output_rate": rate, "hallucination_rate": rate / 2, "wer_test": wer}
        scores |= {"wer_test_voices": wer}
        long = {"gap_output_rate": rate, "insertion_rate_long": rate / 4, "wer_long": wer + rate / 10}
        return {
            "variant": variant,
            "seed": seed,
            "decoders": {
                "pipeline": scores,
                "fw_float32": {**scores, "long": long},
                "fw_int8": scores,
                "transcribe_long": {"long": long},
            },
        }

    runs = [run("base", None, 1.0)]
    runs += [run(variant, seed, rate + 0.01 * seed) for variant, rate in rates.items() for seed in (0, 1, 2)]
    options = {"model": "tiny.en", "seeds": [0, 1, 2], "nonspeech_test": 72}
    return {
        "study": "silence",
        "options": options,
        "pairs": {"speech": 57, "no_speech": 72},
        "max_steps": 85,
        "long_files": [{"gap_s": [2.0, 40.0]}],
        "runs": runs,
        "complete": True,
    }


def test_targets_say_met_and_not_met_from_the_numbers():
    rates = {"orpo_eot_padded": 0.1, "sft_eot_padded": 0.05, "orpo_nospeech": 0.5, "orpo_speech": 1.0}
    raw = _raw(rates)
    for run in raw["runs"]:
        if run["variant"] == "orpo_eot_padded":  # worse than the base on held-out voices under the pipeline
            run["decoders"]["pipeline"] = {**run["decoders"]["pipeline"], "wer_test_voices": 0.35}
    lines = check_targets(raw)
    recipe = [line for line in lines if line.startswith("- ORPO, target eot, + padded speech, pipeline")]
    nospeech = [line for line in lines if line.startswith("- ORPO, target nospeech, pipeline")]
    assert recipe[0].endswith(": met") and nospeech[0].endswith(": not met")
    long_wer = [line for line in lines if "+ padded speech: WER no worse than the base model's" in line]
    assert len(long_wer) == 2 and all(line.endswith(": met") for line in long_wer)  # 0.31 against 0.40
    sft = [line for line in lines if line.startswith("- ORPO no worse than SFT")]
    assert len(sft) == 3 and all(line.endswith(": not met") for line in sft)  # 10% against SFT's 5%
    against_base = {
        line.split(" no worse")[0]: line.endswith(": met")
        for line in lines
        if "no worse than the base model" in line and "WER (test" in line
    }
    assert len(against_base) == 6 and [k for k, met in against_base.items() if not met] == [
        "- ORPO, target eot, + padded speech, speech WER (test_voices, pipeline)"
    ]  # 35.0 against the base's 30.0; every other split and decoder ties the base


def test_runs_measured_before_the_segments_were_kept_are_scored_again(tmp_path, monkeypatch):
    from rlhf_asr.evaluation import faster_whisper_eval
    from rlhf_asr.studies.results import silence

    calls = []
    monkeypatch.setattr(faster_whisper_eval, "faster_whisper_model", lambda folder, device: folder)
    monkeypatch.setattr(silence, "long_decoders", lambda a, fw, files: calls.append((a, fw)) or {
        "fw_float32": {"segments": [[]]}, "transcribe_long": {"segments": [[]]}
    })  # fmt: skip
    old = _raw({"orpo_eot": 0.1})["runs"][1]
    silence.rescore_long(old, tmp_path / "run", tmp_path / "run" / "ct2_float32", files=[])
    assert calls == [(tmp_path / "run", tmp_path / "run" / "ct2_float32")]
    assert old["decoders"]["transcribe_long"]["long"] == {"segments": [[]]}
    assert old["decoders"]["fw_float32"]["long"] == {"segments": [[]]} and "wer_test" in old["decoders"]["fw_float32"]
    silence.rescore_long(old, tmp_path / "run", tmp_path / "run" / "ct2_float32", files=[])
    assert len(calls) == 1  # kept segments: not decoded again


def test_report_renders_from_the_raw_file_alone(tmp_path):
    path = tmp_path / "silence_raw.json"
    path.write_text(json.dumps(_raw({"orpo_eot": 0.1, "orpo_speech": 1.0})))
    report = regenerate(path, tmp_path / "r.md")
    assert "## Silence where it is deployed (tiny.en)" in report
    assert "**Speech after a pause**" in report  # its table, "-" where no run has the split
    assert "| ORPO, target eot | 11.0 ± 1.0 | 11.0 ± 1.0 | 11.0 ± 1.0 | - |" in report
    assert f"--from_raw {path}" in report and (tmp_path / "r.md").read_text() == report


def test_an_interrupted_study_continues_from_its_raw_file_only_for_the_same_options(tmp_path):
    from dataclasses import asdict, replace

    from rlhf_asr.studies.options import ResultsOptions
    from rlhf_asr.studies.results.resume import earlier_runs

    def _earlier_runs(options):
        return earlier_runs(options, "silence")

    options = ResultsOptions(output_dir=str(tmp_path), raw_path=str(tmp_path / "silence_raw.json"), study="silence")
    assert _earlier_runs(options) == {}  # nothing measured yet
    raw = _raw({"orpo_eot": 0.1})
    raw["options"] = asdict(options)
    raw["runs"].append({"variant": "guard", "seed": None, "decoders": {}})
    (tmp_path / "silence_raw.json").write_text(json.dumps(raw))
    earlier = _earlier_runs(replace(options, seeds=[0, 1, 2, 3]))  # more seeds: the same study, continued
    assert set(earlier) == {("base", None), ("guard", None), ("orpo_eot", 0), ("orpo_eot", 1), ("orpo_eot", 2)}
    assert earlier["orpo_eot", 1][0]["decoders"]["pipeline"]["nonspeech_output_rate"] == pytest.approx(0.11)
    assert _earlier_runs(replace(options, epochs=1.0)) == {}  # other options: never mixed in
    # a raw file written before `disable_prompt_loss` became `completion_only_loss` continues too
    raw["options"]["disable_prompt_loss"] = raw["options"].pop("completion_only_loss")
    (tmp_path / "silence_raw.json").write_text(json.dumps(raw))
    assert len(_earlier_runs(options)) == 5
    # an option added since the raw file was written counts as its default there; one that only picks runs is free
    del raw["options"]["nbest"], raw["options"]["objectives"]
    (tmp_path / "silence_raw.json").write_text(json.dumps(raw))
    assert len(_earlier_runs(replace(options, objectives=["sft"]))) == 5
    assert _earlier_runs(replace(options, nbest=2)) == {}


def test_each_variant_trains_with_its_no_speech_target(tmp_path):
    """The arguments a trained variant runs with (a frozen DataArguments once made this step crash)."""
    from rlhf_asr.studies.options import ResultsOptions
    from rlhf_asr.studies.results.silence import SILENCE_VARIANTS, variant_args

    for variant, (loss, _, target) in SILENCE_VARIANTS.items():
        args = variant_args(
            ResultsOptions(seed=2), tmp_path, tmp_path / "p.jsonl", tmp_path / variant, 85, target, loss
        )
        model_args, data_args, config = args
        assert data_args.nospeech_target == target and data_args.train_data == str(tmp_path / "p.jsonl")
        assert config.max_steps == 85 and config.merge_at_end and config.loss == loss and config.seed == 2
        assert config.output_dir == str(tmp_path / variant) and model_args.base_model == str(tmp_path)


def test_an_interrupted_study_renders_with_its_count_of_runs():
    from rlhf_asr.studies.results.report import Provenance
    from rlhf_asr.studies.results.silence_report import render_silence

    raw = _raw({"orpo_eot_padded": 0.1}) | {"complete": False, "planned_runs": 20}
    report = render_silence(raw, Provenance.alone("silence_raw.json", "silence.md"))
    assert "INCOMPLETE (4 of 20 planned runs recorded): seeds 0 1 2" in report
    assert "| ORPO, target eot, + padded speech | 11.0 ± 1.0 |" in report  # 10, 11, 12 % over the seeds
    assert "| base model | 100.0 |" in report
