"""The results report states what was compared, including when SFT was not run."""

from rlhf_asr.recipes.results import check_targets, render_markdown, summarize

OPTIONS = {"num_train": 4, "num_test": 2, "test_voices": ["v"], "lora_r": 4, "learning_rate": 1e-3, "batch_size": 2,
           "seeds": [0, 1]}  # fmt: skip


def _report(runs):
    summary = summarize(runs)
    results = {"options": OPTIONS, "pairs": 3, "held_out_pairs": 1, "max_steps": 2, "summary": summary,
               "targets": check_targets(summary)}  # fmt: skip
    return results["targets"], render_markdown(results).splitlines()[-1]


def test_targets_against_sft_and_without_it():
    base = {"variant": "base", "wer_test": 0.4}
    orpo = [{"variant": "orpo", "wer_test": 0.26}, {"variant": "orpo", "wer_test": 0.30}]
    targets, line = _report([base, *orpo])
    assert targets["orpo"]["no_worse_than_sft"] is None and line.endswith("SFT not run.")
    assert targets["orpo"]["meets_25pct_reduction"] and "30% lower than base (meets" in line
    targets, line = _report([base, *orpo, {"variant": "sft", "wer_test": 0.25}])
    assert targets["orpo"]["no_worse_than_sft"] is False and line.endswith("WORSE than SFT at equal steps.")
    targets, line = _report([base, *orpo, {"variant": "sft", "wer_test": 0.35}])
    assert targets["orpo"]["no_worse_than_sft"] is True and line.endswith("no worse than SFT at equal steps.")
