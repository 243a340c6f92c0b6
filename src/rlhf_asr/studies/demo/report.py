"""The demo's scores and its report: WER before/after per split and voice, examples, report.md and its plot."""

from __future__ import annotations

import logging
from pathlib import Path

from rlhf_asr.evaluation.metrics import error_rates
from rlhf_asr.studies.corpus import Corpus
from rlhf_asr.studies.options import TEST_SPLITS

logger = logging.getLogger(__name__)


def score(texts: list[str], hypotheses: list[str]) -> dict:
    """WER, CER and word counts of English transcripts (normalised)."""
    result = error_rates(texts, hypotheses, "en")
    return {
        "wer": result["wer"],
        "cer": result["cer"],
        "word_errors": result["word_errors"],
        "reference_words": result["reference_words"],
    }


def by_voice(corpus: Corpus, split: str, hypotheses: list[str]) -> dict[str, float]:
    """WER of one split per voice."""
    rows = corpus.splits[split]
    voices = sorted({u.voice for u in rows})
    return {
        voice: score(
            [u.text for u in rows if u.voice == voice], [h for u, h in zip(rows, hypotheses) if u.voice == voice]
        )["wer"]
        for voice in voices
    }


def pick_examples(transcripts: list[dict], fixed: int = 5, broken: int = 2) -> list[dict]:
    """The held-out utterances whose word errors fell most, and the ones where they rose most."""

    def errors(row: dict, key: str) -> int:
        return error_rates([row["reference"]], [row[key]], "en")["word_errors"]

    changed = [
        (errors(row, "after") - errors(row, "before"), row) for row in transcripts if row["before"] != row["after"]
    ]
    changed.sort(key=lambda item: item[0])
    return [row for delta, row in changed[:fixed] if delta < 0] + [
        row for delta, row in changed[::-1][:broken] if delta > 0
    ]


def evaluate_split(corpus: Corpus, split: str, before: list[str], after: list[str]) -> dict:
    texts = corpus.texts(split)
    return {
        "label": TEST_SPLITS[split],
        "utterances": len(texts),
        "voices": sorted({u.voice for u in corpus.splits[split]}),
        "before": score(texts, before),
        "after": score(texts, after),
        "wer_by_voice_before": by_voice(corpus, split, before),
        "wer_by_voice_after": by_voice(corpus, split, after),
    }


def _pair_counts(metrics: dict) -> tuple[int, int, int]:
    """(speech pairs, no-speech pairs, loop pairs) of the demo's training set."""
    silent = (metrics.get("nonspeech") or {}).get("pairs", 0)
    loops = metrics.get("loop_pairs", 0)
    return metrics["pairs"] - silent - loops, silent, loops


def log_summary(metrics: dict, out: Path) -> None:
    logger.info("stage times: %s", ", ".join(f"{k} {v:.0f} s" for k, v in metrics["stages_s"].items()))
    speech, silent, loops = _pair_counts(metrics)
    logger.info(
        "total %.0f s; %d pairs (%d speech, %d no-speech, %d loop) from %d speech and %d non-speech training clips",
        metrics["total_s"],
        metrics["pairs"],
        speech,
        silent,
        loops,
        metrics["train_utterances"],
        (metrics.get("nonspeech") or {}).get("train_clips", 0),
    )
    for result in metrics["evaluation"].values():
        logger.info(
            "WER %s: %.1f%% -> %.1f%%", result["label"], 100 * result["before"]["wer"], 100 * result["after"]["wer"]
        )
    nonspeech = metrics.get("nonspeech")
    if nonspeech:
        logger.info(
            "held-out non-speech clips with any output (%d clips): %s -> %s (demo's decoding)%s",
            nonspeech["clips"],
            _pct(nonspeech["nonspeech_output_rate_before"]),
            _pct(nonspeech["nonspeech_output_rate_after"]),
            "".join(
                f", {_pct(r['before']['nonspeech_output_rate'])} -> {_pct(r['after']['nonspeech_output_rate'])} ({d})"
                for d, r in (nonspeech.get("decoders") or {}).items()
            ),
        )
    logger.info("report: %s", out / "report.md")


DEPLOYED_LABELS = {
    "pipeline": "transformers.pipeline (= `rlhf-asr transcribe`)",
    "faster_whisper": "faster-whisper, float32 export",
}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _nonspeech_lines(nonspeech: dict | None) -> list[str]:
    """The held-out non-speech rows beside the WER table: any output and words, per decoder."""
    if not nonspeech:
        return []
    rows = [("the demo's decoding (greedy)", nonspeech["nonspeech_output_rate_before"],
             nonspeech["nonspeech_output_rate_after"], nonspeech["hallucination_rate_before"],
             nonspeech["hallucination_rate_after"])]  # fmt: skip
    for decoder, label in DEPLOYED_LABELS.items():
        rates = (nonspeech.get("decoders") or {}).get(decoder)
        if rates:
            rows.append(
                (
                    label,
                    *(
                        rates[w][k]
                        for k in ("nonspeech_output_rate", "hallucination_rate")
                        for w in ("before", "after")
                    ),
                )
            )
    return [
        "",
        f"Held-out non-speech: {nonspeech['clips']} clips of {', '.join(nonspeech['kinds'])}; "
        f"{'/'.join(map(str, nonspeech['durations_s']))} s. Training heard other kinds and lengths: "
        f"{nonspeech['train_clips']} clips of {', '.join(nonspeech['train_kinds']) or 'none'} "
        f"({nonspeech['pairs']} no-speech pairs: chosen empty, rejected = what the base model wrote).",
        "",
        "| decoder, its defaults | any output before | any output after | words before | words after |",
        "|---|---|---|---|---|",
        *(f"| {label} | " + " | ".join(_pct(v) for v in values) + " |" for label, *values in rows),
        "",
        'Any output: share of clips with any text, "." included; words: at least one word (hallucination). '
        f"Repetition loops on them: {_pct(nonspeech['repetition_rate_before'])} -> "
        f"{_pct(nonspeech['repetition_rate_after'])} (the demo's decoding).",
    ]


def plot_wer(evaluation: dict, path: Path) -> None:
    """Bars of WER before/after per held-out split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [result["label"] for result in evaluation.values()]
    before = [100 * result["before"]["wer"] for result in evaluation.values()]
    after = [100 * result["after"]["wer"] for result in evaluation.values()]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = range(len(labels))
    for offset, values, name in ((-0.2, before, "base tiny.en"), (0.2, after, "after ORPO")):
        bars = ax.bar([i + offset for i in x], values, width=0.4, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("WER (%)")
    ax.set_title("Held-out WER, espeak-ng speech")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out: Path, metrics: dict, examples: list[dict]) -> None:
    """report.md and wer_before_after.png in `out`."""
    evaluation, options = metrics["evaluation"], metrics["options"]
    plot_wer(evaluation, out / "wer_before_after.png")
    lines = [
        "# rlhf-asr demo",
        "",
        "Whisper tiny.en (bundled weights), ORPO with LoRA on the decoder, speech synthesized by espeak-ng.",
        "",
    ]
    lines += [
        "## Held-out WER",
        "",
        "| split | utterances | WER before | WER after | CER before | CER after |",
        "|---|---|---|---|---|---|",
    ]
    for result in evaluation.values():
        b, a = result["before"], result["after"]
        lines.append(
            f"| {result['label']} | {result['utterances']} | {_pct(b['wer'])} | {_pct(a['wer'])} | "
            f"{_pct(b['cer'])} | {_pct(a['cer'])} |"
        )
    lines += _nonspeech_lines(metrics.get("nonspeech"))
    lines += ["", "![WER before and after](wer_before_after.png)", "", "Per voice (WER before -> after):", ""]
    for result in evaluation.values():
        per_voice = ", ".join(
            f"{voice} {_pct(result['wer_by_voice_before'][voice])} -> {_pct(result['wer_by_voice_after'][voice])}"
            for voice in result["voices"]
        )
        lines.append(f"- {result['label']}: {per_voice}")
    lines += ["", "## Data and training", ""]
    speech, silent, loops = _pair_counts(metrics)
    lines += [
        f"- {metrics['train_utterances']} training clips (base WER {_pct(metrics['train_wer_before'])}); "
        f"{metrics['pairs']} preference pairs: {speech} from speech clips the base model got wrong (the rest "
        f"give no pair), {silent} from non-speech clips it wrote words for"
        + (f", {loops} of a training reference against itself running into a repetition loop" if loops else ""),
        f"- training voices: {', '.join(options['train_voices'])}; held-out voices: "
        f"{', '.join(options['test_voices']) or 'none'}; "
        f"speeds (words/min): {', '.join(map(str, options['speeds']))}; {metrics.get('espeak_ng') or 'espeak-ng'}; "
        "texts from the shipped sentences_en.txt",
        f"- LoRA r={options['lora_r']} on decoder q/k/v/out (self- and cross-attention) and fc1/fc2, encoder frozen; "
        f"lr {options['learning_rate']}, {options['epochs']} epochs, batch {options['batch_size']}, ORPO "
        f"alpha {options['alpha']}, seed {options['seed']}",
        f"- {metrics['training']['global_step']} optimizer steps, mean train loss "
        f"{metrics['training']['train_loss']:.3f}; curves: "
        "[training_curves.png](training_curves.png)",
        f"- encoder run once for {metrics['clips_encoded']} clips ({metrics['encoder_s_per_clip']:.2f} s "
        "per clip); training took "
        f"its encoder outputs from the cache ({metrics['encoder_cache']['hits']} hits, "
        f"{metrics['encoder_cache']['misses']} misses), "
        f"so {metrics['encoder_passes_saved']} encoder passes (about "
        f"{metrics['encoder_passes_saved'] * metrics['encoder_s_per_clip']:.0f} s) were not run",
        "",
        "## Stages",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in metrics["stages_s"].items()]
    lines += [
        f"| **total** | **{metrics['total_s']:.1f}** |",
        "",
        "## Examples (held-out: most fixed, most broken)",
        "",
    ]
    for example in examples:
        lines += [
            f"- {example['voice']} @ {example['speed']} wpm",
            f"  - reference: {example['reference']}",
            f"  - before: {example['before']}",
            f"  - after: {example['after']}",
        ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
