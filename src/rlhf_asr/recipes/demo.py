"""Recipe: `rlhf-asr demo`, the product's main job end to end, offline, on real weights.

Synthesized speech (espeak-ng) -> bundled Whisper tiny.en transcribes it -> its wrong transcripts
become ORPO preference pairs (chosen = the text spoken, rejected = the model's own transcript)
-> the training recipe fine-tunes LoRA on the decoder -> WER before and after on held-out texts
spoken by the training voices and by voices training never heard.

On CPU the encoder dominates (every clip is a 30 s window), so it runs exactly once per clip:
its outputs serve the base model's decoding, are handed to training through a pre-filled
EncoderCache (keyed by audio file and encoder weights), and serve the evaluation after training. That
is valid because the encoder is frozen and LoRA only touches the decoder (its cross-attention
included), and no augmentation is applied.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from rlhf_asr.data.audio import load_audio
from rlhf_asr.data.synth import Corpus, build_corpus, default_workers, espeak_version, write_jsonl
from rlhf_asr.evaluation.metrics import error_rates
from rlhf_asr.evaluation.transcribe import decode_encoded, decoder_prefixes, encode_audio
from rlhf_asr.model.encoder_cache import EncoderCache, audio_key, encoder_fingerprint

TRAIN_VOICES = ["en-us", "en-us+m3", "en+f2", "en-gb", "en-gb-scotland", "en-us+croak"]
HELD_OUT_VOICES = ["en-gb-x-rp", "en-us-nyc"]
SPEEDS = [140, 160, 180, 200]
TEST_SPLITS = {"test": "held-out texts, seen voices", "test_voices": "held-out texts, held-out voices"}
# A 15-word sentence is ~25 tokens. A repetition loop would hold its whole batch to the generation
# config's 448 tokens, so batches stop at this cap and only the rows it cut are decoded again, alone
# and uncapped: every transcript is then exactly what `generate` gives (what users deploy).
MAX_NEW_TOKENS = 48


@dataclass
class DemoOptions:
    output_dir: str = "demo_output"
    num_train: int = 240
    num_test: int = 60
    epochs: float = 3.0
    learning_rate: float = 1e-3
    batch_size: int = 8
    lora_r: int = 16
    alpha: float = 0.1  # the ORPO paper's lambda; 0.25 and 1 gave higher held-out WER in our sweep
    seed: int = 0
    model: str = "tiny.en"
    train_voices: list[str] = field(default_factory=lambda: list(TRAIN_VOICES))
    test_voices: list[str] = field(default_factory=lambda: list(HELD_OUT_VOICES))
    speeds: list[int] = field(default_factory=lambda: list(SPEEDS))
    workers: int = field(default_factory=default_workers)
    decode_batch_size: int = 32  # a decoding step costs about the same for 4 clips as for 32 on CPU
    threads: int = 0  # torch threads per stage; 0 = one, plus one encoder worker per core (see `pick_threads`)


class Stages:
    """Wall time of each stage, printed as it ends and kept for the report."""

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        self.seconds: dict[str, float] = {}
        self.threads_used: dict[str, int] = {}

    @contextmanager
    def __call__(self, name: str, compute: bool = False, workers: int = 1):
        note = ""
        if compute:
            threads = self.threads_used[name] = pick_threads(self.threads)
            note = f" ({f'{workers} workers x ' if workers > 1 else ''}{threads} thread{'s' if threads > 1 else ''})"
        print(f"[demo] {name}{note} ...", flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        print(f"[demo] {name}: {self.seconds[name]:.1f} s", flush=True)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pick_threads(requested: int = 0) -> int:
    """Torch intra-op threads for a stage: `requested`, else one.

    Decoding and decoder-only training are thousands of small ops. On a CPU shared with other jobs
    each parallel region waits for a thread the scheduler has parked: we measured training steps 6x
    and decoding 14-30x slower with 2 threads than with 1, for a gain of about 1.5x on an idle
    2-core machine. The encoder gets its parallelism from `encode_clips` workers instead.
    """
    torch.set_num_threads(requested if requested > 0 else 1)
    return torch.get_num_threads()


def encode_clips(model, processor, paths: list[Path], batch_size: int = 8, workers: int = 1) -> torch.Tensor:
    """Encoder outputs [N, frames, d] of audio files, in order, under no_grad.

    With `workers` > 1, batches are encoded concurrently, each on one intra-op thread (torch
    releases the GIL inside its ops), so every core works and no parallel region waits on a
    descheduled thread. On a busy 2-core machine we measured 0.80 s per clip this way, 0.92 s with
    2 intra-op threads, 0.74 s with one.
    """
    batches = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]

    def encode(batch: list[Path]) -> torch.Tensor:
        return encode_audio(model, processor, [load_audio(path) for path in batch])

    if workers <= 1 or len(batches) == 1:
        return torch.cat([encode(batch) for batch in batches])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return torch.cat(list(pool.map(encode, batches)))


def load_decoding_model(path: str | Path):
    """(model, processor) for the demo's decoding: adapters merged (same outputs, faster steps), generation config as saved."""
    from rlhf_asr.model.loading import load_for_inference

    model, processor = load_for_inference(path)  # the cap is per call (decode_hidden), never in the generation config
    model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    return model, processor


def encode_corpus(model, processor, corpus: Corpus, workers: int) -> dict[str, torch.Tensor]:
    """Encoder outputs of every split of `corpus`, in row order."""
    return {
        split: encode_clips(model, processor, [corpus.folder / u.path for u in rows], workers=workers)
        for split, rows in corpus.splits.items()
    }


def is_mistake(reference: str, hypothesis: str) -> bool:
    """A non-empty transcript with word errors after normalisation: what becomes a preference pair."""
    return bool(hypothesis.strip()) and error_rates([reference], [hypothesis], "en")["word_errors"] > 0


def decode_hidden(model, processor, hidden: torch.Tensor, durations: list[float], batch_size: int) -> list[str]:
    """Transcripts from encoder outputs as `generate` gives them (greedy, the generation config's limits).

    Clips are batched by duration so short ones do not wait on long ones; see `MAX_NEW_TOKENS`.
    """
    order = sorted(range(len(durations)), key=durations.__getitem__)
    prefix = decoder_prefixes(processor, ["en"])[0]
    texts: list[str] = [""] * len(order)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        found = decode_encoded(model, processor, hidden[rows], [prefix] * len(rows), max_new_tokens=MAX_NEW_TOKENS)
        for row, candidates in zip(rows, found):
            texts[row] = candidates[0].text
            if not candidates[0].finished:  # cut by the cap: decode again to the generation config's limit
                texts[row] = decode_encoded(model, processor, hidden[[row]], [prefix])[0][0].text
    return texts


def preference_rows(corpus: Corpus, hypotheses: list[str]) -> list[tuple[int, dict]]:
    """(corpus row, pair row) for every training clip the base model got wrong (normalised WER > 0)."""
    rows = []
    for index, (utterance, hypothesis) in enumerate(zip(corpus.splits["train"], hypotheses)):
        if not is_mistake(utterance.text, hypothesis):
            continue
        rows.append((index, {"audio": {"path": utterance.path}, "duration": round(utterance.duration, 3),
                             "chosen": utterance.text, "rejected": hypothesis, "language": "English"}))
    return rows


def training_argv(options: DemoOptions, base: Path, pairs: Path, output: Path) -> list[str]:
    """Flags of `rlhf-asr train` for the demo: LoRA on the decoder (self- and cross-attention, MLP), frozen encoder."""
    return [
        "--base_model", str(base), "--train_data", str(pairs), "--output_dir", str(output),
        "--peft", "lora", "--lora_r", str(options.lora_r), "--lora_alpha", str(2 * options.lora_r),
        "--lora_dropout", "0", "--target_modules", "q_proj,k_proj,v_proj,out_proj,fc1,fc2",
        "--freeze_encoder", "True", "--encoder_cache", "none", "--language", "English",
        "--num_train_epochs", str(options.epochs), "--learning_rate", str(options.learning_rate),
        "--per_device_train_batch_size", str(options.batch_size), "--warmup_steps", "5",
        "--lr_scheduler_type", "linear", "--alpha", str(options.alpha), "--seed", str(options.seed),
        "--logging_steps", "5", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
        "--dataloader_pin_memory", "False", "--disable_tqdm", "True",
    ]


def check_pairs(path: Path, count: int) -> None:
    """The cache is keyed by manifest row, so every row must reach the dataset: fail early if one would not."""
    from rlhf_asr.data.manifest import read_preference_manifest

    report = read_preference_manifest(path, min_duration=0.5, max_duration=30.0)
    if len(report.examples) != count:
        raise RuntimeError(f"{path}: {report.summary()}; the encoder cache would be misaligned")


def score(texts: list[str], hypotheses: list[str]) -> dict:
    result = error_rates(texts, hypotheses, "en")
    return {"wer": result["wer"], "cer": result["cer"], "word_errors": result["word_errors"],
            "reference_words": result["reference_words"]}


def by_voice(corpus: Corpus, split: str, hypotheses: list[str]) -> dict[str, float]:
    rows = corpus.splits[split]
    voices = sorted({u.voice for u in rows})
    return {
        voice: score([u.text for u in rows if u.voice == voice], [h for u, h in zip(rows, hypotheses) if u.voice == voice])["wer"]
        for voice in voices
    }


def run_demo(options: DemoOptions) -> dict:
    """Runs every stage into `options.output_dir`; returns the metrics also written to metrics.json."""
    from rlhf_asr.model.loading import resolve_model_source

    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(options.threads)
    with stages("synthesize speech"):
        corpus = build_corpus(
            out / "corpus", options.num_train, options.num_test, options.train_voices, options.test_voices,
            options.speeds, seed=options.seed, workers=options.workers,
        )
    with stages("load model"):
        base = Path(resolve_model_source(options.model))
        model, processor = load_decoding_model(base)
    workers = 1 if options.threads else cpu_cores()
    with stages("encoder, once per clip", compute=True, workers=workers):
        hidden = encode_corpus(model, processor, corpus, workers)
    clips = sum(len(h) for h in hidden.values())
    with stages("base model transcribes", compute=True):
        before = {split: decode_split(model, processor, hidden, corpus, split, options) for split in corpus.splits}
    with stages("make preference pairs"):
        pairs_path, pairs, cache = make_pairs(corpus, before["train"], hidden.pop("train"), model)
    model_dir = out / "model"
    with stages("ORPO training", compute=True):
        summary = train(options, base, pairs_path, model_dir, cache)
        if (model_dir / "training_curves.png").is_file():
            shutil.copyfile(model_dir / "training_curves.png", out / "training_curves.png")
    with stages("fine-tuned model transcribes", compute=True):
        tuned, _ = load_decoding_model(model_dir)
        after = {split: decode_split(tuned, processor, hidden, corpus, split, options) for split in TEST_SPLITS if split in hidden}
    metrics = {
        "evaluation": {split: evaluate_split(corpus, split, before[split], after[split]) for split in after},
        "train_wer_before": score(corpus.texts("train"), before["train"])["wer"],
        "pairs": len(pairs), "train_utterances": len(corpus.splits["train"]),
        "clips_encoded": clips, "encoder_cache": {"hits": cache.hits, "misses": cache.misses},
        # Without reuse, training and the evaluation after it would each run the encoder again per clip.
        "encoder_s_per_clip": round(stages.seconds["encoder, once per clip"] / clips, 3),
        "encoder_passes_saved": cache.hits + sum(len(texts) for texts in after.values()),
        "stages_s": {name: round(seconds, 1) for name, seconds in stages.seconds.items()},
        "total_s": round(stages.total, 1), "threads": stages.threads_used,
        "espeak_ng": espeak_version(),  # the audio (so the WER) depends on its version; texts and voices are fixed
        "options": asdict(options), "training": {k: summary.get(k) for k in ("global_step", "train_runtime_s", "train_loss")},
    }
    transcripts = [
        {"split": split, "voice": u.voice, "speed": u.speed, "reference": u.text, "before": b, "after": a}
        for split in after for u, b, a in zip(corpus.splits[split], before[split], after[split])
    ]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_jsonl(out / "transcripts.jsonl", transcripts)
    write_report(out, metrics, pick_examples(transcripts))
    print_summary(metrics, out)
    return metrics


def pick_examples(transcripts: list[dict], fixed: int = 5, broken: int = 2) -> list[dict]:
    """The held-out utterances whose word errors fell most, and the ones where they rose most."""
    def errors(row: dict, key: str) -> int:
        return error_rates([row["reference"]], [row[key]], "en")["word_errors"]

    changed = [(errors(row, "after") - errors(row, "before"), row) for row in transcripts if row["before"] != row["after"]]
    changed.sort(key=lambda item: item[0])
    return [row for delta, row in changed[:fixed] if delta < 0] + [row for delta, row in changed[::-1][:broken] if delta > 0]


def decode_split(model, processor, hidden: dict, corpus: Corpus, split: str, options: DemoOptions) -> list[str]:
    return decode_hidden(model, processor, hidden[split], [u.duration for u in corpus.splits[split]], options.decode_batch_size)


def make_pairs(corpus: Corpus, hypotheses: list[str], hidden: torch.Tensor, model) -> tuple[Path, list, EncoderCache]:
    """Writes pairs.jsonl and an EncoderCache holding each pair's encoder output (`model`'s) under its audio file."""
    pairs = preference_rows(corpus, hypotheses)
    if not pairs:
        raise RuntimeError("the base model transcribed every training clip correctly: nothing to train on")
    path = corpus.folder / "pairs.jsonl"
    write_jsonl(path, [row for _, row in pairs])
    check_pairs(path, len(pairs))
    cache = EncoderCache(max_bytes=8 * 1024**3)
    fingerprint = encoder_fingerprint(model)
    for index, _ in pairs:
        cache.put(fingerprint, audio_key(corpus.folder / corpus.splits["train"][index].path), hidden[index])
    return path, pairs, cache


def train(options: DemoOptions, base: Path, pairs_path: Path, model_dir: Path, cache: EncoderCache) -> dict:
    """The product's own training recipe, with the encoder outputs handed over."""
    from rlhf_asr.commands.train import parse_args
    from rlhf_asr.recipes.train import run_training

    model_args, data_args, config = parse_args(training_argv(options, base, pairs_path, model_dir))
    return run_training(model_args, data_args, config, encoder_cache=cache)


def evaluate_split(corpus: Corpus, split: str, before: list[str], after: list[str]) -> dict:
    texts = corpus.texts(split)
    return {
        "label": TEST_SPLITS[split], "utterances": len(texts), "voices": sorted({u.voice for u in corpus.splits[split]}),
        "before": score(texts, before), "after": score(texts, after),
        "wer_by_voice_before": by_voice(corpus, split, before), "wer_by_voice_after": by_voice(corpus, split, after),
    }


def print_summary(metrics: dict, out: Path) -> None:
    print("[demo] stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in metrics["stages_s"].items()))
    print(f"[demo] total {metrics['total_s']:.0f} s; {metrics['pairs']} pairs from {metrics['train_utterances']} training clips")
    for split, result in metrics["evaluation"].items():
        print(f"[demo] WER {result['label']}: {100 * result['before']['wer']:.1f}% -> {100 * result['after']['wer']:.1f}%")
    print(f"[demo] report: {out / 'report.md'}")


# ---- report ----

def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


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
    lines = ["# rlhf-asr demo", "", "Whisper tiny.en (bundled weights), ORPO with LoRA on the decoder, speech synthesized by espeak-ng.", ""]
    lines += ["## Held-out WER", "", "| split | utterances | WER before | WER after | CER before | CER after |", "|---|---|---|---|---|---|"]
    for result in evaluation.values():
        b, a = result["before"], result["after"]
        lines.append(f"| {result['label']} | {result['utterances']} | {_pct(b['wer'])} | {_pct(a['wer'])} | {_pct(b['cer'])} | {_pct(a['cer'])} |")
    lines += ["", "![WER before and after](wer_before_after.png)", "", "Per voice (WER before -> after):", ""]
    for result in evaluation.values():
        per_voice = ", ".join(
            f"{voice} {_pct(result['wer_by_voice_before'][voice])} -> {_pct(result['wer_by_voice_after'][voice])}"
            for voice in result["voices"]
        )
        lines.append(f"- {result['label']}: {per_voice}")
    lines += ["", "## Data and training", ""]
    lines += [
        f"- {metrics['train_utterances']} training clips (base WER {_pct(metrics['train_wer_before'])}); "
        f"{metrics['pairs']} preference pairs (clips the base model got wrong; the rest give no pair)",
        f"- training voices: {', '.join(options['train_voices'])}; held-out voices: {', '.join(options['test_voices']) or 'none'}; "
        f"speeds (words/min): {', '.join(map(str, options['speeds']))}; {metrics.get('espeak_ng') or 'espeak-ng'}; "
        "texts from the shipped sentences_en.txt",
        f"- LoRA r={options['lora_r']} on decoder q/k/v/out (self- and cross-attention) and fc1/fc2, encoder frozen; "
        f"lr {options['learning_rate']}, {options['epochs']} epochs, batch {options['batch_size']}, ORPO alpha {options['alpha']}, seed {options['seed']}",
        f"- {metrics['training']['global_step']} optimizer steps, mean train loss {metrics['training']['train_loss']:.3f}; curves: "
        "[training_curves.png](training_curves.png)",
        f"- encoder run once for {metrics['clips_encoded']} clips ({metrics['encoder_s_per_clip']:.2f} s per clip); training took "
        f"its encoder outputs from the cache ({metrics['encoder_cache']['hits']} hits, {metrics['encoder_cache']['misses']} misses), "
        f"so {metrics['encoder_passes_saved']} encoder passes (about "
        f"{metrics['encoder_passes_saved'] * metrics['encoder_s_per_clip']:.0f} s) were not run",
        "", "## Stages", "", "| stage | seconds |", "|---|---|",
    ]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in metrics["stages_s"].items()]
    lines += [f"| **total** | **{metrics['total_s']:.1f}** |", "", "## Examples (held-out: most fixed, most broken)", ""]
    for example in examples:
        lines += [
            f"- {example['voice']} @ {example['speed']} wpm", f"  - reference: {example['reference']}",
            f"  - before: {example['before']}", f"  - after: {example['after']}",
        ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
