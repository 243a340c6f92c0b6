"""The objectives study's report (`objectives.py`), rendered from objectives_raw.json alone.

Per held-out split a table of WER, mean ± standard deviation over seeds, with each objective's
relative change against SFT; then preference accuracy and training time (and for
`--study objectives_nonspeech` the held-out non-speech clips with any output and with words); then
the target, checked on those numbers (`check_target`), and what was tried (K, the weights, the
learning rate), read from the raw file.
"""

from __future__ import annotations

from rlhf_asr.studies.options import TEST_SPLITS
from rlhf_asr.studies.results.objective_spec import spec_changes
from rlhf_asr.studies.results.report import (
    Provenance,
    base_row_name,
    cell,
    completeness,
    measured_on,
    prompt_in_loss,
    summarize,
)

METRICS = ("wer_test", "wer_test_voices", "preference_accuracy", "train_s")
NONSPEECH_METRICS = ("nonspeech_output_rate", "hallucination_rate")  # --study objectives_nonspeech
NAMES = {
    "sft": "SFT (`--loss sft`)",
    "orpo": "ORPO (`--loss orpo`)",
    "dpo": "DPO (`--loss dpo`)",
    "simpo": "SimPO (`--loss simpo`)",
    "mwer": "MWER (`--loss mwer`, K-best rows)",
}
LABELS = {"sft": "SFT", "orpo": "ORPO", "dpo": "DPO", "simpo": "SimPO", "mwer": "MWER"}
TARGET = 0.05  # relative WER reduction against SFT an objective must reach
MIN_SEEDS = 2  # a seed spread needs two seeds


def name_of(variant: str) -> str:
    """A run's row name: the objective's, or for a spec with changes (`dpo:rpo_alpha=1`, objective_spec.py)
    the train command's flags (`DPO (`--loss dpo --rpo_alpha 1`)`)."""
    if variant in NAMES or ":" not in variant:
        return NAMES.get(variant, variant)
    loss, _, changes = spec_changes(variant)
    flags = " ".join(f"--{name} {value}" for name, _, value in changes)
    kbest = ", K-best rows" if loss == "mwer" else ""
    return f"{LABELS.get(loss, loss)} (`--loss {loss} {flags}`{kbest})"


def _order(variant: str) -> tuple:
    """Base, SFT, then each objective followed by its specs with changes, then anything else."""
    order = ("base", *NAMES)
    loss = variant.partition(":")[0]
    return (order.index(loss) if loss in order else len(order), variant != loss, variant)


def _seeds(runs: list[dict], variant: str) -> int:
    return sum(run["variant"] == variant for run in runs)


def split_check(summary: dict, runs: list[dict], objective: str, split: str) -> dict:
    """One objective against SFT on one held-out split: relative reduction, spreads apart, met."""
    (sft, sft_spread), (ours, spread) = summary["sft"][f"wer_{split}"], summary[objective][f"wer_{split}"]
    relative = (sft - ours) / sft if sft else 0.0
    seeded = min(_seeds(runs, "sft"), _seeds(runs, objective)) >= MIN_SEEDS
    apart = seeded and ours + spread < sft - sft_spread  # the seed spreads (mean ± standard deviation) do not overlap
    return {"relative": relative, "apart": apart, "seeded": seeded, "met": relative >= TARGET and apart}


def check_target(summary: dict, runs: list[dict]) -> dict[str, dict[str, dict]]:
    """objective -> split -> `split_check`, for every objective run beside SFT."""
    if "sft" not in summary:
        return {}
    return {
        objective: {split: split_check(summary, runs, objective, split) for split in TEST_SPLITS}
        for objective in summary
        if objective not in ("base", "sft")
    }


def target_line(checks: dict, runs: list[dict]) -> str:
    """Met when an objective beats SFT by TARGET on both held-out splits with the seed spreads apart."""
    head = f"**Target** (at least {100 * TARGET:.0f}% lower held-out WER than SFT, seed spreads apart)"
    if not checks:
        return f"{head}: cannot be checked: SFT or every other objective is missing."
    if _seeds(runs, "sft") < MIN_SEEDS:
        return f"{head}: cannot be checked: fewer than {MIN_SEEDS} seeds."
    winners = [name for name, splits in checks.items() if all(check["met"] for check in splits.values())]
    if winners:
        return f"{head}: MET by {', '.join(name_of(name) for name in winners)} on held-out texts and held-out voices."
    return f"{head}: NOT MET by any objective on both held-out texts and held-out voices."


def _change(check: dict | None) -> str:
    if check is None:
        return "–"
    if not check["seeded"]:
        verdict = f"fewer than {MIN_SEEDS} seeds: no spread"
    else:
        verdict = "met" if check["met"] else "spreads apart" if check["apart"] else "spreads overlap"
    return f"{round(-100 * check['relative'], 1) + 0.0:+.1f}% ({verdict})"  # + 0.0: never "-0.0"


def _weights(weights: dict) -> str:
    return ", ".join(f"{name} {value}" for name, value in weights.items()) or "no weights"


def tried(raw: dict) -> list[str]:
    """What was tried, from the raw file: K, each objective's weights, learning rate, steps, batch."""
    opts = raw["options"]
    lines = [
        f"- K = {opts['nbest']} hypotheses per K-best row (MWER; {raw['kbest_rows']} rows)"
        if raw.get("kbest_rows") is not None
        else "- MWER not run (no K-best rows)",
        f"- learning rate {opts['learning_rate']}, {raw['max_steps']} steps of {opts['batch_size']} rows, LoRA "
        f"r={opts['lora_r']}, seeds {opts['seeds']}",
    ]
    lines += [f"- {name_of(name)}: {_weights(weights)}" for name, weights in raw.get("weights", {}).items()]
    return lines


def _data(raw: dict) -> tuple[str, str]:
    """(title suffix, what the runs trained on) of either objectives study."""
    nonspeech = raw.get("study") == "objectives_nonspeech"
    no_speech = f"; {raw['nonspeech_pairs']} of them no-speech, chosen = nothing" if nonspeech else ""
    study, clips = ("hallucination", "speech and non-speech clips") if nonspeech else ("WER", "clips")
    return ", speech + no-speech pairs" if nonspeech else "", (
        f"The {study} study's corpus and pairs: {raw['pairs']} preference pairs (chosen = text spoken, rejected = the "
        f"base model's transcript{no_speech}) for SFT, ORPO, DPO and SimPO; MWER on K-best rows of the same training "
        f"{clips} (the base model's beam search, `make-pairs --nbest {raw['options']['nbest']}`)."
    )


def _nonspeech_table(raw: dict, summary: dict, names: dict) -> list[str]:
    if not any("nonspeech_output_rate" in metrics for metrics in summary.values()):
        return []
    lines = [
        f"**Held-out non-speech** ({raw['options']['nonspeech_test']} clips of kinds and durations not in training, "
        "the study's greedy decoding): share of clips with any output (punctuation included), and with words:",
        "",
        "| model | any output (%) | words (%) |",
        "|---|---|---|",
    ]
    for variant, metrics in summary.items():
        any_output, words = metrics.get("nonspeech_output_rate"), metrics.get("hallucination_rate")
        lines.append(f"| {names.get(variant, variant)} | {cell(any_output)} | {cell(words)} |")
    return [*lines, ""]


def render_objectives(raw: dict, provenance: Provenance) -> str:
    opts, runs = raw["options"], raw["runs"]
    found = summarize(runs, METRICS + NONSPEECH_METRICS)
    summary = {v: found[v] for v in sorted(found, key=_order)}  # SFT first
    checks = check_target(summary, runs)
    names = {"base": base_row_name(opts)} | {variant: name_of(variant) for variant in summary if variant != "base"}
    title, data = _data(raw)
    lines = [
        f"## Objectives at equal steps{title} ({opts['model']})",
        "",
        f"Rendered from `{provenance.raw_path}` by `{provenance.regenerate_command()}`{provenance.scope()}.",
        f"{completeness(raw)}: seeds {opts['seeds']} (mean ± standard deviation). {data} Every run: LoRA "
        f"r={opts['lora_r']} on the decoder, frozen encoder, {prompt_in_loss(opts)}, lr {opts['learning_rate']}, the "
        f"same {raw['max_steps']} optimizer steps of {opts['batch_size']} rows, each objective's weights at the "
        "trainer's defaults unless its row names a change.",
        "",
    ]
    for split, label in TEST_SPLITS.items():
        lines += [
            f"**WER on {label}** (%), and the change against SFT:",
            "",
            "| model | WER (%) | vs SFT (relative) |",
            "|---|---|---|",
        ]
        for variant, metrics in summary.items():
            check = checks.get(variant, {}).get(split)
            lines.append(f"| {names.get(variant, variant)} | {cell(metrics.get(f'wer_{split}'))} | {_change(check)} |")
        lines.append("")
    lines += [
        f"**Preference accuracy** on the {raw['held_out_pairs']} held-out clips the base model got wrong (% where "
        "the model gives the reference a higher mean per-token log-prob than the base model's transcript), and "
        "training time (DPO's includes computing the starting model's log-probs once):",
        "",
        "| model | preference accuracy (%) | training time (s) |",
        "|---|---|---|",
    ]
    for variant, metrics in summary.items():
        train_s = cell(metrics.get("train_s"), False) if variant != "base" else "–"
        lines.append(f"| {names.get(variant, variant)} | {cell(metrics.get('preference_accuracy'))} | {train_s} |")
    lines += ["", *_nonspeech_table(raw, summary, names), target_line(checks, runs), ""]
    lines += ["What was tried:", "", *tried(raw)]
    lines += ["", *measured_on(raw.get("environment")), ""]
    return "\n".join(lines)
