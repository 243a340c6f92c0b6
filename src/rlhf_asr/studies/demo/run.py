"""Study: `rlhf-asr demo`, the product's main job end to end, offline, on real weights.

Synthesized speech (espeak-ng) -> bundled Whisper tiny.en transcribes it -> its wrong transcripts
become ORPO preference pairs (chosen = the text spoken, rejected = the model's own transcript)
-> `rlhf-asr train`'s run fine-tunes LoRA on the decoder -> WER before and after on held-out texts
spoken by the training voices and by voices training never heard. Generated non-speech clips
(`studies/nonspeech.py`) add no-speech pairs (chosen "", rejected = what the model wrote on them), and
the non-speech output and hallucination rates are reported before and after on held-out clips of
other kinds and durations, under the demo's decoding, `transformers.pipeline` and faster-whisper defaults.

The encoder runs once per clip and its outputs serve decoding, training and evaluation
(`studies/stages.py` says why that is valid). The pieces live in `rlhf_asr.studies`; this is their order.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from rlhf_asr.data.synth_audio import espeak_version
from rlhf_asr.evaluation.deployed import nonspeech_by_decoder
from rlhf_asr.studies.corpus import write_jsonl
from rlhf_asr.studies.demo.report import evaluate_split, log_summary, pick_examples, score, write_report
from rlhf_asr.studies.nonspeech import add_nonspeech, evaluate_nonspeech
from rlhf_asr.studies.options import (
    HELD_OUT_VOICES,
    SPEEDS,
    TEST_SPLITS,
    TRAIN_VOICES,
    DemoOptions,
    synthesize_corpus,
    training_args,
)
from rlhf_asr.studies.stages import (
    Stages,
    cpu_cores,
    decode_split,
    encode_corpus,
    load_decoding_model,
    make_split_pairs,
)

__all__ = ["DemoOptions", "HELD_OUT_VOICES", "SPEEDS", "TRAIN_VOICES", "run_demo"]


def run_demo(options: DemoOptions) -> dict:
    """Runs every stage into `options.output_dir`; returns the metrics also written to metrics.json."""
    from rlhf_asr.model.loading import resolve_model_source
    from rlhf_asr.trainer.run import run_training

    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(options.threads)
    with stages("synthesize speech"):
        corpus = synthesize_corpus(options, out / "corpus", seed=options.seed)
    with stages("generate non-speech clips"):
        add_nonspeech(corpus, options.nonspeech_train, options.nonspeech_test, seed=options.seed)
    with stages("load model"):
        base = Path(resolve_model_source(options.model))
        model, processor = load_decoding_model(base)
    workers = 1 if options.threads else cpu_cores()
    with stages("encoder, once per clip", compute=True, workers=workers):
        hidden = encode_corpus(model, processor, corpus, workers)
    clips = sum(len(h) for h in hidden.values())
    batch = options.decode_batch_size
    with stages("base model transcribes", compute=True):
        before = {split: decode_split(model, processor, hidden, corpus, split, batch) for split in corpus.splits}
    with stages("make preference pairs"):
        splits = tuple(split for split in ("train", "nonspeech_train") if split in hidden)
        pairs_path, pairs, cache = make_split_pairs(corpus, splits, before, hidden, model, loops=options.loop_pairs)
        for split in splits:
            del hidden[split]
    model_dir = out / "model"
    with stages("ORPO training", compute=True):
        summary = run_training(
            *training_args(options, base, pairs_path, model_dir, merge_at_end=True), encoder_cache=cache
        )
        if (model_dir / "training_curves.png").is_file():
            shutil.copyfile(model_dir / "training_curves.png", out / "training_curves.png")
    with stages("fine-tuned model transcribes", compute=True):
        tuned, _ = load_decoding_model(model_dir)
        after = {
            split: decode_split(tuned, processor, hidden, corpus, split, batch)
            for split in (*TEST_SPLITS, "nonspeech_test")
            if split in hidden
        }
    nonspeech_after = after.pop("nonspeech_test", None)
    deployed = None
    if nonspeech_after is not None:
        with stages("pipeline and faster-whisper on non-speech", compute=True):
            paths = [str(corpus.folder / u.path) for u in corpus.splits["nonspeech_test"]]
            deployed = nonspeech_by_decoder({"before": base, "after": model_dir / "merged"}, paths)
    metrics = {
        "evaluation": {split: evaluate_split(corpus, split, before[split], after[split]) for split in after},
        "train_wer_before": score(corpus.texts("train"), before["train"])["wer"],
        "pairs": len(pairs),
        "loop_pairs": sum(row.get("kind") == "loop" for _, row in pairs),
        "nonspeech": None
        if nonspeech_after is None
        else evaluate_nonspeech(
            corpus, before["nonspeech_test"], nonspeech_after, sum(row["chosen"] == "" for _, row in pairs), deployed
        ),
        "train_utterances": len(corpus.splits["train"]),
        "clips_encoded": clips,
        "encoder_cache": {"hits": cache.hits, "misses": cache.misses},
        # Without reuse, training and the evaluation after it would each run the encoder again per clip.
        "encoder_s_per_clip": round(stages.seconds["encoder, once per clip"] / clips, 3),
        "encoder_passes_saved": cache.hits + sum(len(texts) for texts in after.values()),
        "stages_s": {name: round(seconds, 1) for name, seconds in stages.seconds.items()},
        "total_s": round(stages.total, 1),
        "threads": stages.threads_used,
        "espeak_ng": espeak_version(),  # the audio (so the WER) depends on its version; texts and voices are fixed
        "options": asdict(options),
        "training": {k: summary.get(k) for k in ("global_step", "train_runtime_s", "train_loss")},
    }
    transcripts = [
        {"split": split, "voice": u.voice, "speed": u.speed, "reference": u.text, "before": b, "after": a}
        for split in after
        for u, b, a in zip(corpus.splits[split], before[split], after[split])
    ]
    if nonspeech_after is not None:  # the sound's kind in "voice", its length in "duration"
        transcripts += [
            {
                "split": "nonspeech_test",
                "voice": u.voice,
                "duration": round(u.duration, 1),
                "reference": "",
                "before": b,
                "after": a,
            }
            for u, b, a in zip(corpus.splits["nonspeech_test"], before["nonspeech_test"], nonspeech_after)
        ]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_jsonl(out / "transcripts.jsonl", transcripts)
    write_report(out, metrics, pick_examples([row for row in transcripts if row["reference"]]))
    log_summary(metrics, out)
    return metrics
