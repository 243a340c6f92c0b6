"""The silence study's report (`silence.py`), rendered from its raw file alone.

Tables of mean ± standard deviation over seeds, per variant and decoder: the non-speech output rate
(any output, "." included) and the hallucination rate (words) on held-out non-speech, speech WER on
held-out texts and voices, speech after a 15 s pause, and the long recordings' share of files with
text inside the non-speech stretch, inserted words and WER; then the issue's targets checked on those
numbers.
"""

from __future__ import annotations

import statistics

from rlhf_asr.studies.results.report import Provenance, completeness

NAMES = {
    "base": "base model",
    "guard": "base + decode-time guard",
    "orpo_eot_padded": "ORPO, target eot, + padded speech",
    "sft_eot_padded": "SFT, target eot, + padded speech",
    "orpo_eot": "ORPO, target eot",
    "orpo_nospeech": "ORPO, target nospeech",
    "orpo_both": "ORPO, target both",
    "orpo_speech": "ORPO, speech pairs only",
}
DECODERS = {
    "transcribe_long": "transcribe --timestamps",
    "pipeline": "pipeline",
    "fw_float32": "faster-whisper f32",
    "fw_int8": "faster-whisper int8",
    "guard": "generate + guard",
}
MAX_RATIO = 0.2
RECIPE = "orpo_eot_padded"  # the recipe (make-pairs --pad_silence): the targets after the 0.2x ones are checked on it


def _values(raw: dict, variant: str, decoder: str, metric: str, long: bool = False) -> list[float]:
    values = []
    for run in raw["runs"]:
        scores = run["decoders"].get(decoder, {}) if run["variant"] == variant else {}
        scores = scores.get("long", {}) if long else scores
        if scores.get(metric) is not None:
            values.append(100 * scores[metric])
    return values


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _variants(raw: dict) -> list[str]:
    seen = [run["variant"] for run in raw["runs"]]
    return [name for name in NAMES if name in seen]


def _table(raw: dict, metric: str, decoders, long: bool = False) -> list[str]:
    lines = ["| | " + " | ".join(DECODERS.get(d, d) for d in decoders) + " |", "|---" * (len(decoders) + 1) + "|"]
    for variant in _variants(raw):
        cells = [_cell(_values(raw, variant, d, metric, long)) for d in decoders]
        if any(cell != "-" for cell in cells):
            lines.append(f"| {NAMES[variant]} | " + " | ".join(cells) + " |")
    return lines


def _mean(raw, variant, decoder, metric, long: bool = False) -> float | None:
    values = _values(raw, variant, decoder, metric, long)
    return statistics.mean(values) if values else None


def check_targets(raw: dict) -> list[str]:
    """The issue's targets, each as met / not met with its numbers."""
    lines = []
    for variant in (RECIPE, "orpo_eot", "orpo_nospeech", "orpo_both"):
        for decoder in ("pipeline", "fw_float32", "fw_int8"):
            base, ours = (
                _mean(raw, "base", decoder, "nonspeech_output_rate"),
                _mean(raw, variant, decoder, "nonspeech_output_rate"),
            )
            if base is None or ours is None:
                continue
            met = ours <= MAX_RATIO * base
            lines.append(
                f"- {NAMES[variant]}, {DECODERS[decoder]}: non-speech output {ours:.1f}% against the base's "
                f"{base:.1f}% ({ours / base if base else 0:.2f}x; target <= {MAX_RATIO}x): "
                + ("met" if met else "not met")
            )
    for decoder in ("pipeline", "fw_float32"):
        for split in ("wer_test", "wer_test_voices"):
            speech = _values(raw, "orpo_speech", decoder, split)
            ours = _mean(raw, RECIPE, decoder, split)
            if len(speech) < 2 or ours is None:
                continue
            limit = statistics.mean(speech) + statistics.stdev(speech)
            lines.append(
                f"- {NAMES[RECIPE]}, speech WER ({split[4:]}, {DECODERS[decoder]}): {ours:.1f} against speech-only "
                f"{statistics.mean(speech):.1f} (allowed up to {limit:.1f}): {'met' if ours <= limit else 'not met'}"
            )
    # The issue asks for no loss against the base model on a domain it already knows; the synthetic voices
    # are the nearest we have (no real recordings here), so every split and decoder is checked against it.
    for decoder in ("pipeline", "fw_float32", "fw_int8"):
        for split in ("wer_test", "wer_test_voices"):
            base, ours = (_mean(raw, v, decoder, split) for v in ("base", RECIPE))
            if base is not None and ours is not None:
                lines.append(
                    f"- {NAMES[RECIPE]}, speech WER ({split[4:]}, {DECODERS[decoder]}) no worse than the base "
                    f"model's: {ours:.1f} against {base:.1f}: {'met' if ours <= base else 'not met'}"
                )
    for decoder in ("pipeline", "fw_float32", "fw_int8"):
        sft, ours = (
            _mean(raw, "sft_eot_padded", decoder, "nonspeech_output_rate"),
            _mean(raw, RECIPE, decoder, "nonspeech_output_rate"),
        )
        if sft is not None and ours is not None:
            lines.append(
                f"- ORPO no worse than SFT on non-speech output (both padded), {DECODERS[decoder]}: {ours:.1f}% "
                f"against {sft:.1f}%: {'met' if ours <= sft else 'not met'}"
            )
    int8 = _mean(raw, RECIPE, "fw_int8", "wer_test")
    for decoder in ("fw_float32", "pipeline"):  # the float32 export: the same decoder, so quantization alone
        other = _mean(raw, RECIPE, decoder, "wer_test")
        if other is not None and int8 is not None:
            lines.append(
                f"- int8 export WER within 2 points of {DECODERS[decoder]} ({NAMES[RECIPE]}, held-out texts): "
                f"{int8:.1f} against {other:.1f}: {'met' if abs(int8 - other) <= 2 else 'not met'}"
            )
    for decoder in ("transcribe_long", "fw_float32"):
        gap = _mean(raw, RECIPE, decoder, "gap_output_rate", long=True)
        if gap is not None:
            lines.append(
                f"- long recordings, {DECODERS[decoder]}: {NAMES[RECIPE]} writes text inside the non-speech stretch of "
                f"{gap:.1f}% of files (target 0): {'met' if gap == 0 else 'not met'}"
            )
        base, ours = (_mean(raw, v, decoder, "wer_long", long=True) for v in ("base", RECIPE))
        if base is not None and ours is not None:
            lines.append(
                f"- long recordings, {DECODERS[decoder]}: {NAMES[RECIPE]}: WER no worse than the base model's: "
                f"{ours:.1f} against {base:.1f}: {'met' if ours <= base else 'not met'}"
            )
    return lines


def _padded(raw: dict) -> str:
    count = raw["pairs"].get("padded")
    if not count:
        return ""
    return (f" (the padded variant: + {count} pairs of training speech with up to 25 s of training "
            "non-speech around it)")  # fmt: skip


def render_silence(raw: dict, provenance: Provenance) -> str:
    opts = raw["options"]
    seeds = " ".join(map(str, opts["seeds"]))
    decoders = ("pipeline", "fw_float32", "fw_int8", "guard")
    lines = [
        f"## Silence where it is deployed ({opts['model']})",
        "",
        f"Rendered from `{provenance.raw_path}` by `{provenance.regenerate_command()}`{provenance.scope()}.",
        f"{completeness(raw)}: seeds {seeds}, "
        f"{raw['max_steps']} steps each, {raw['pairs']['speech']} speech + {raw['pairs']['no_speech']} no-speech "
        f"pairs{_padded(raw)}; {opts['nonspeech_test']} held-out non-speech clips of kinds and lengths training "
        "never had.",
        "Each decoder at its own defaults: the pipeline on the merged folder (5 beams, the saved generation "
        "config; `rlhf-asr transcribe` decodes short clips the same way), faster-whisper on a float32 and an int8 "
        "export. The guard row is the base model through `generate` with the no-speech and log-prob thresholds.",
        "",
        '**Non-speech output rate** (% of held-out non-speech clips with any output, "." included):',
        "",
        *_table(raw, "nonspeech_output_rate", decoders),
        "",
        "**Hallucination rate** (% with at least one word):",
        "",
        *_table(raw, "hallucination_rate", decoders),
        "",
        "**Speech WER on held-out texts** (%):",
        "",
        *_table(raw, "wer_test", decoders),
        "",
        "**Speech WER on held-out voices** (%):",
        "",
        *_table(raw, "wer_test_voices", decoders),
        "",
        "**Speech after a pause** (each held-out voice clip after 15 s of held-out non-speech): % of clips "
        "with no output at all,",
        "",
        *_table(raw, "no_output_after_pause", decoders[:3]),
        "",
        "and their WER (%):",
        "",
        *_table(raw, "wer_after_pause", decoders[:3]),
        "",
        f"**Long recordings** ({len(raw['long_files'])} files: held-out speech, two held-out non-speech "
        "clips (30-60 s), speech) under `rlhf-asr transcribe --timestamps` and faster-whisper: "
        "% of files with a segment of text inside the non-speech stretch (a segment that runs on into the "
        "speech after it is that speech, timed from the start of a window that began in the gap):",
        "",
        *_table(raw, "gap_output_rate", ("transcribe_long", "fw_float32"), long=True),
        "",
        "the words inserted over the reference, anywhere in the file (% of reference words):",
        "",
        *_table(raw, "insertion_rate_long", ("transcribe_long", "fw_float32"), long=True),
        "",
        "and the WER of the whole file (%):",
        "",
        *_table(raw, "wer_long", ("transcribe_long", "fw_float32"), long=True),
        "",
        "Targets:",
        "",
        *check_targets(raw),
        "",
    ]
    return "\n".join(lines)
