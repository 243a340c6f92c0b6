"""The hallucination study's report (`rlhf-asr results --study hallucination`), rendered from its raw JSON alone.

Summary over seeds and the issue's targets are recomputed from the per-run numbers every time
(`render_hallucination`), so the committed section can be checked and regenerated without training.
Targets, on held-out non-speech clips of kinds and durations training never had:
- hallucination rate at most 0.2x the base model's;
- speech WER no worse than the speech-only ORPO model, within the seed spread (here: the mean
  at most the speech-only mean plus the larger of the two standard deviations), on both splits;
- ORPO's hallucination rate no worse than SFT's on the same pairs.
"""

from __future__ import annotations

from rlhf_asr.studies.options import GUARDED_VARIANTS, ORPO_ALPHA, DemoOptions, recorded_options
from rlhf_asr.studies.results.report import (
    Provenance,
    base_row_name,
    cell,
    measured_on,
    model_studied,
    prompt_in_loss,
    summarize,
)

METRICS = ("wer_test", "wer_test_voices", "hallucination_rate", "repetition_rate", "train_s")
MAX_HALLUCINATION_RATIO = 0.2
SIZES = ("num_train", "num_test", "nonspeech_train", "nonspeech_test", "epochs")
NAMES = {  # "base" is named by the model studied (`_names`)
    "guard": "base + decode-time guard",
    "sft_nonspeech": "SFT (`--alpha 0`), speech + non-speech pairs",
    "orpo_nonspeech": f"ORPO (`--alpha {ORPO_ALPHA}`), speech + non-speech pairs",
    "orpo": f"ORPO (`--alpha {ORPO_ALPHA}`), speech pairs only",
    "orpo_nonspeech_no_loops": f"ORPO (`--alpha {ORPO_ALPHA}`), speech + non-speech pairs, no loop pairs",
}


def _names(raw: dict) -> dict[str, str]:
    """Row names; a study run with `--loop_pairs` trained its speech + non-speech rows on them too."""
    names = dict(NAMES)
    names["base"] = base_row_name(raw.get("options", {}))
    if raw.get("options", {}).get("loop_pairs"):
        names.update({v: NAMES[v] + " + loop pairs" for v in ("orpo_nonspeech", "sft_nonspeech")})
    names.update({f"{v}_guard": f"{names[v]}, + decode-time guard" for v in GUARDED_VARIANTS})
    return names


def _mean(summary: dict, variant: str, metric: str) -> float | None:
    value = summary.get(variant, {}).get(metric)
    return None if value is None else value[0]


def _spread(summary: dict, variant: str, metric: str) -> float:
    value = summary.get(variant, {}).get(metric)
    return 0.0 if value is None else value[1]


def _ratio_check(summary: dict, variant: str, label: str) -> dict:
    base, ours = _mean(summary, "base", "hallucination_rate"), _mean(summary, variant, "hallucination_rate")
    met = None if base is None or ours is None else ours <= MAX_HALLUCINATION_RATIO * base
    detail = "" if met is None else f"{100 * ours:.1f}% against base {100 * base:.1f}%"
    if met is not None and base:
        detail += f" ({ours / base:.2f}x)"
    return {
        "target": f"hallucination rate at most {MAX_HALLUCINATION_RATIO}x base{label}",
        "met": met,
        "detail": detail,
    }


def check_targets(summary: dict, main: str = "orpo_nonspeech") -> list[dict]:
    """[{"target", "met" (True/False/None when a row is missing), "detail"}] for the issue's three targets.

    The ratio target is judged on the trained model alone; the same model behind the decode-time guard
    gets its own line when the study measured it (the two fixes together), never in its place."""
    checks = [_ratio_check(summary, main, "")]
    if f"{main}_guard" in summary:
        checks.append(_ratio_check(summary, f"{main}_guard", ", ORPO + decode-time guard"))
    for metric, label in (("wer_test", "held-out texts"), ("wer_test_voices", "held-out voices")):
        ours, speech = _mean(summary, main, metric), _mean(summary, "orpo", metric)
        if ours is None or speech is None:
            met, detail = None, ""
        else:
            # the reference's own seed spread: a model's instability (one seed looping) must not widen its allowance
            allowed = speech + _spread(summary, "orpo", metric)
            met = ours <= allowed
            detail = f"{100 * ours:.1f}% against speech-only {100 * speech:.1f}% (allowed up to {100 * allowed:.1f}%)"
        checks.append({"target": f"speech WER ({label}) no worse than speech-only ORPO", "met": met, "detail": detail})
    ours, sft = _mean(summary, main, "hallucination_rate"), _mean(summary, "sft_nonspeech", "hallucination_rate")
    met = None if ours is None or sft is None else ours <= sft
    detail = "" if met is None else f"{100 * ours:.1f}% against SFT {100 * sft:.1f}%"
    checks.append({"target": "ORPO's hallucination rate no worse than SFT's", "met": met, "detail": detail})
    return checks


def render_hallucination(raw: dict, provenance: Provenance) -> str:
    """The Markdown section: table over seeds, targets met or not, notes; from `raw` alone."""
    summary = summarize(raw["runs"], METRICS)
    opts, clips = raw["options"], raw["clips"]
    guard = raw.get("guard", {})
    model = model_studied(opts)
    lines = [
        # the default model's heading stays as it was: README links to its anchor
        f"## Hallucinations{'' if model == DemoOptions.model else f' with {model}'}: does ORPO teach Whisper to stay "
        "silent?",
        "",
        f"Generated by `rlhf-asr results --study hallucination` from `{provenance.raw_path}`; "
        f"regenerate without training{provenance.scope()}: `{provenance.regenerate_command()}`. Rerun: "
        f"`{rerun_command(opts)}` (writes results_output/hallucination_raw.json and hallucination.md).",
        "",
        f"Training pairs: {raw['speech_pairs']} speech pairs (the base model's mistakes on {opts['num_train']} "
        f'espeak-ng clips), {_loop_pairs(raw)}{raw["nonspeech_pairs"]} no-speech pairs (chosen "", rejected = what '
        f"the base model wrote) from {clips['train']['count']} generated clips of "
        f"{', '.join(clips['train']['kinds'])}, "
        f"{'/'.join(f'{d:g}' for d in clips['train']['durations'])} s. Held-out non-speech: "
        f"{clips['test']['count']} clips of kinds and durations training never had: "
        f"{', '.join(clips['test']['kinds'])}, {'/'.join(f'{d:g}' for d in clips['test']['durations'])} s. "
        f"Held-out speech: {opts['num_test']} texts by training voices and by held-out voices. Every trained run: "
        f"LoRA r={opts['lora_r']} on the decoder, frozen encoder, "
        f"{prompt_in_loss(opts)}, "
        f"lr {opts['learning_rate']}, batch "
        f"{opts['batch_size']}, {raw['max_steps']} steps (the same for the speech-only model); seeds "
        f"{opts['seeds']} (mean ± standard deviation).",
        f"Decode-time guard: the base model through Whisper's `generate` with no_speech_threshold "
        f"{guard.get('no_speech_threshold')} and logprob_threshold {guard.get('logprob_threshold')} (temperature 0).",
        "",
        "| model | WER held-out texts (%) | WER held-out voices (%) | hallucination rate (%) | repetition rate (%) "
        "| training time (s) |",
        "|---|---|---|---|---|---|",
    ]
    names = _names(raw)
    for variant, metrics in summary.items():
        trained = variant not in ("base", "guard") and not variant.endswith("_guard")
        lines.append(
            f"| {names.get(variant, variant)} | {cell(metrics.get('wer_test'))} | "
            f"{cell(metrics.get('wer_test_voices'))} | {cell(metrics.get('hallucination_rate'))} | "
            f"{cell(metrics.get('repetition_rate'))} | {cell(metrics.get('train_s'), False) if trained else '–'} |"
        )
    lines += ["", "### Targets", ""]
    for check in check_targets(summary):
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[check["met"]]
        lines.append(f"- {check['target']}: {verdict}" + (f" ({check['detail']})." if check["detail"] else "."))
    lines += _ratios(summary, names)
    notes = [
        *measured_on(raw.get("environment")),
        "- Hallucination rate: share of the held-out non-speech clips where the model wrote at least one word "
        "(after Whisper's English normalisation). Repetition rate: share of all held-out outputs (speech and "
        "non-speech) with a loop (an n-gram repeated 3+ times in a row; for speech also an output far longer than "
        "the reference). Both as `rlhf-asr evaluate` computes them (`evaluation/hallucination.py`).",
        *_examples(raw),
        *_loops(raw, names),
        "- The guard row is the base model decoded again from audio by `WhisperForConditionalGeneration.generate` "
        "with the two thresholds and temperature 0 (no sampling fallback): a window is left empty when the "
        "no-speech probability is above its threshold and the mean log-prob below its own (`inference/guard.py`).",
        *_guarded_note(summary),
    ]
    if raw.get("complete") is False:
        notes.append(f"- Incomplete: {len(raw['runs'])} runs recorded of the {raw.get('planned_runs')} planned.")
    return "\n".join([*lines, "", "### Notes", "", *notes]) + "\n"


def _guarded_note(summary: dict) -> list[str]:
    if not any(variant.endswith("_guard") for variant in summary):
        return []
    return [
        '- The "+ decode-time guard" rows are the trained models of the row above them, decoded again from audio '
        "behind the same guard: no training of their own, so no training time."
    ]


def _ratios(summary: dict, names: dict[str, str]) -> list[str]:
    """Every row's hallucination rate as a multiple of the base model's (the 0.2x target's scale)."""
    base = _mean(summary, "base", "hallucination_rate")
    if not base:
        return []
    ratios = [
        f"{names.get(variant, variant)} {_mean(summary, variant, 'hallucination_rate') / base:.2f}x"
        for variant in summary
        if variant != "base" and _mean(summary, variant, "hallucination_rate") is not None
    ]
    return ["", f"Hallucination rate as a multiple of the base model's: {'; '.join(ratios)}."]


def rerun_command(opts: dict) -> str:
    """The command line that made these numbers, from the options recorded in the raw file (today's names)."""
    opts = recorded_options(opts)
    model = "" if model_studied(opts) == DemoOptions.model else f" --model {opts['model']}"
    sizes = model + "".join(f" --{name} {opts[name]}" for name in SIZES if name in opts)
    # runs before these options had neither (both off); an option is named when it is not today's default
    flags = "".join(
        f" --{name} {value}"
        for name in ("loop_pairs", "completion_only_loss")
        if (value := opts.get(name, False)) != getattr(DemoOptions, name)
    )
    return f"rlhf-asr results --study hallucination{sizes}{flags} --seeds {' '.join(map(str, opts.get('seeds', [])))}"


def _examples(raw: dict) -> list[str]:
    """What the base model wrote on the held-out non-speech clips, most frequent first."""
    outputs = raw.get("base_nonspeech_outputs") or {}
    if not outputs:
        return []
    shown = ", ".join(f'"{_short(text)}" x{count}' for text, count in list(outputs.items())[:8])
    return [
        f"- The base model on the held-out non-speech clips wrote: {shown}. A transcript of punctuation only "
        '(". . .") has no word, so it is neither a hallucination nor a loop by these definitions.'
    ]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _loop_pairs(raw: dict) -> str:
    """The loop pairs' part of the training-pairs sentence (runs before they existed had none)."""
    count = raw.get("loop_pairs", 0)
    if not count:
        return "and "
    return (
        f"{count} loop pairs (every training reference against itself running into a repetition loop, "
        "`--loop_pairs`; added to the speech + non-speech sets only) and "
    )


def _loops(raw: dict, names: dict[str, str]) -> list[str]:
    """Trained runs with a repetition loop in their held-out outputs, named with their speech WER: one
    looping transcript adds hundreds of words to its split's WER, so it moves a mean far more than a seed's spread."""
    runs = [run for run in raw["runs"] if run.get("seed") is not None and run.get("repetition_rate")]
    if not runs:
        return []
    shown = "; ".join(
        f"{names.get(run['variant'], run['variant'])} seed {run['seed']}: {100 * run['repetition_rate']:.1f}% of "
        f"outputs, WER held-out texts {100 * run['wer_test']:.1f}%, held-out voices {100 * run['wer_test_voices']:.1f}%"
        for run in runs
    )
    return [f"- Runs with a repetition loop in their held-out outputs: {shown}."]
