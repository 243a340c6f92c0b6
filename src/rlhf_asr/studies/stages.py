"""The studies' pipeline stages: thread tuning, one encoder pass per clip, decoding, the pairs and their cache.

On CPU the encoder dominates (every clip is a 30 s window), so it runs exactly once per clip:
its outputs serve the base model's decoding, are handed to training through a pre-filled
EncoderCache (keyed by audio file and encoder weights), and serve the evaluation after training.
That is valid because the encoder is frozen and LoRA only touches the decoder (its
cross-attention included), and no augmentation is applied.
"""

from __future__ import annotations

import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

from rlhf_asr.data.audio import load_audio
from rlhf_asr.inference.decode import decode_encoded, decoder_prefixes, encode_audio
from rlhf_asr.model.encoder_cache import EncoderCache, audio_key, encoder_fingerprint
from rlhf_asr.pairs import loop_rows, mistake_rows, no_speech_rows
from rlhf_asr.studies.corpus import Corpus, write_jsonl

logger = logging.getLogger(__name__)

# A 15-word sentence is ~25 tokens. A repetition loop would hold its whole batch to the generation
# config's 448 tokens, so batches stop at this cap and only the rows it cut are decoded again, alone
# and uncapped: every transcript is then exactly what `generate` gives (what users deploy).
MAX_NEW_TOKENS = 48
# The studies and the demo decode greedily, as every committed result was measured (the tool's own
# default is the pipeline's 5 beams); docs/results.md says so.
STUDY_NUM_BEAMS = 1


class Stages:
    """Wall time of each stage, logged as it ends and kept for the report."""

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
        logger.info("%s%s ...", name, note)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        logger.info("%s: %.1f s", name, self.seconds[name])

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pick_threads(requested: int = 0) -> int:
    """Torch intra-op threads for a stage: `requested`, else one.

    Decoding and decoder-only training are thousands of small ops. On a CPU shared with other jobs
    each parallel region waits for a thread the scheduler has parked, so more threads cost more than
    they gain (docs/benchmarks.md, "Threads in the studies"). The encoder gets its parallelism from
    `encode_clips` workers instead.
    """
    torch.set_num_threads(requested if requested > 0 else 1)
    return torch.get_num_threads()


def encode_clips(model, processor, paths: list[Path], batch_size: int = 8, workers: int = 1) -> torch.Tensor:
    """Encoder outputs [N, frames, d] of audio files, in order, under no_grad.

    With `workers` > 1, batches are encoded concurrently, each on one intra-op thread (torch
    releases the GIL inside its ops), so every core works and no parallel region waits on a
    descheduled thread (docs/benchmarks.md, "Threads in the studies").
    """
    batches = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]

    def encode(batch: list[Path]) -> torch.Tensor:
        return encode_audio(model, processor, [load_audio(path) for path in batch])

    if workers <= 1 or len(batches) == 1:
        return torch.cat([encode(batch) for batch in batches])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return torch.cat(list(pool.map(encode, batches)))


def load_decoding_model(path: str | Path):
    """(model, processor) for the demo's decoding.

    Adapters merged (same outputs, faster steps); the generation config as saved.
    """
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


def decode_hidden(model, processor, hidden: torch.Tensor, durations: list[float], batch_size: int) -> list[str]:
    """Transcripts from encoder outputs as `generate` gives them (greedy, the generation config's limits).

    Clips are batched by duration so short ones do not wait on long ones; see `MAX_NEW_TOKENS`.
    """
    order = sorted(range(len(durations)), key=durations.__getitem__)
    prefix = decoder_prefixes(processor, ["en"])[0]
    texts: list[str] = [""] * len(order)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        found = decode_encoded(
            model,
            processor,
            hidden[rows],
            [prefix] * len(rows),
            num_beams=STUDY_NUM_BEAMS,
            max_new_tokens=MAX_NEW_TOKENS,
        )
        for row, candidates in zip(rows, found):
            texts[row] = candidates[0].text
            if not candidates[0].finished:  # cut by the cap: decode again to the generation config's limit
                again = decode_encoded(model, processor, hidden[[row]], [prefix], num_beams=STUDY_NUM_BEAMS)
                texts[row] = again[0][0].text
    return texts


def decode_split(model, processor, hidden: dict, corpus: Corpus, split: str, batch_size: int) -> list[str]:
    """Transcripts of one corpus split from its encoder outputs."""
    return decode_hidden(model, processor, hidden[split], [u.duration for u in corpus.splits[split]], batch_size)


def check_pairs(path: Path, count: int) -> None:
    """The cache is keyed by manifest row, so every row must reach the dataset: fail early if one would not."""
    from rlhf_asr.data.manifest import read_preference_manifest

    report = read_preference_manifest(path, min_duration=0.5, max_duration=30.0, kbest_rows=True)
    if len(report.examples) != count:
        raise RuntimeError(f"{path}: {report.summary()}; the encoder cache would be misaligned")


def pair_rows(rows: list, hypotheses: list[str], loops: bool = False) -> list[tuple[int, dict]]:
    """(index, preference row) of one split: speech clips the model got wrong (`mistake_rows`),
    non-speech clips (empty text) the model wrote anything for (chosen ""), and with `loops` every
    speech clip's reference against a repetition loop of it (`loop_rows`)."""
    speech = [i for i, u in enumerate(rows) if u.text]
    silent = [i for i, u in enumerate(rows) if not u.text]
    clips = ([rows[i].path for i in speech], [rows[i].duration for i in speech], [rows[i].text for i in speech])
    found = [(speech[i], row) for i, row in mistake_rows(*clips, [hypotheses[i] for i in speech])]
    if loops:
        found += [(speech[i], row) for i, row in loop_rows(*clips)]
    nothing_said = ([rows[i].path for i in silent], [rows[i].duration for i in silent], [hypotheses[i] for i in silent])
    found += [(silent[i], row) for i, row in no_speech_rows(*nothing_said)]
    return sorted(found, key=lambda item: item[0])


def make_pairs(corpus: Corpus, hypotheses: list[str], hidden: torch.Tensor, model) -> tuple[Path, list, EncoderCache]:
    """Writes pairs.jsonl and an EncoderCache holding each pair's encoder output (`model`'s) under its audio file."""
    return make_split_pairs(corpus, ("train",), {"train": hypotheses}, {"train": hidden}, model)


def make_split_pairs(
    corpus: Corpus,
    splits: tuple[str, ...],
    before: dict[str, list[str]],
    hidden: dict[str, torch.Tensor],
    model,
    name: str = "pairs.jsonl",
    cache: EncoderCache | None = None,
    loops: bool = False,
) -> tuple[Path, list, EncoderCache]:
    """Pairs of `splits` (see `pair_rows`, `loops` too) in `name`, their encoder outputs put in `cache`
    (a new one by default)."""
    pairs, outputs = [], []
    for split in splits:
        rows = corpus.splits[split]
        for index, row in pair_rows(rows, before[split], loops):
            pairs.append((index, row))  # index within its split
            outputs.append((corpus.folder / rows[index].path, hidden[split][index]))
    if not pairs:
        raise RuntimeError("the base model transcribed every training clip correctly: nothing to train on")
    path = corpus.folder / name
    write_jsonl(path, [row for _, row in pairs])
    check_pairs(path, len(pairs))
    cache = cache if cache is not None else EncoderCache(max_bytes=8 * 1024**3)
    fingerprint = encoder_fingerprint(model)
    for audio, output in outputs:
        cache.put(fingerprint, audio_key(audio), output)
    return path, pairs, cache


def make_kbest_rows(
    corpus: Corpus,
    splits: tuple[str, ...],
    hidden: dict[str, torch.Tensor],
    model,
    processor,
    nbest: int,
    batch_size: int,
    cache: EncoderCache,
) -> tuple[Path, list[dict]]:
    """K-best rows of `splits` as `make-pairs --nbest K` writes them, from the splits' encoder outputs:
    make-pairs' decoding (`MiningOptions.decoding`: a scored beam of max(num_candidates, K)) and its
    rows (`pairs.nbest.kbest_row`; a non-speech clip's reference is ""), in `kbest<K>.jsonl`; each
    row's encoder output put in `cache`."""
    from rlhf_asr.data.examples import AsrExample
    from rlhf_asr.data.text_rules import NO_SPEECH, SPEECH
    from rlhf_asr.data.tokens import transcript_encoder
    from rlhf_asr.model.core import whisper_core
    from rlhf_asr.pairs.choice import Miner
    from rlhf_asr.pairs.nbest import kbest_row
    from rlhf_asr.pairs.options import MiningOptions

    mining = MiningOptions(nbest=nbest)
    name = getattr(whisper_core(model).config, "_name_or_path", "model")
    miner = Miner(
        processor, random.Random(mining.seed), mining.negative, False, name, corpus.folder.absolute(), [],
        transcript_encoder(processor),
    )  # fmt: skip
    prefix = decoder_prefixes(processor, ["en"])[0]
    found: list[tuple[Path, torch.Tensor, dict]] = []  # (audio, encoder output, row), split by split
    for split in splits:
        clips = corpus.splits[split]
        order = sorted(range(len(clips)), key=lambda i: clips[i].duration)
        rows: list[tuple[int, Path, dict]] = []  # (index in the split, audio, row)
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            decoded = decode_encoded(
                model, processor, hidden[split][indices], [prefix] * len(indices), **mining.decoding()
            )
            for index, candidates in zip(indices, decoded):
                clip = clips[index]
                audio = corpus.folder / clip.path
                example = AsrExample(audio, clip.duration, clip.text, "en", None, f"{split}:{index}")
                row, _ = kbest_row(miner, example, "en", candidates, SPEECH if clip.text else NO_SPEECH, nbest)
                if row is not None:
                    rows.append((index, audio, row))
        found += [(audio, hidden[split][index], row) for index, audio, row in sorted(rows, key=lambda r: r[0])]
        logger.info("%d %d-best rows of %d %s clips", len(rows), nbest, len(clips), split)
    if not found:
        raise RuntimeError(f"every {nbest}-best hypothesis of every {'/'.join(splits)} clip is right: nothing for MWER")
    path = corpus.folder / f"kbest{nbest}.jsonl"
    write_jsonl(path, [row for _, _, row in found])
    check_pairs(path, len(found))
    fingerprint = encoder_fingerprint(model)
    for audio, output, _ in found:
        cache.put(fingerprint, audio_key(audio), output)
    return path, [row for _, _, row in found]


def timed_training(args: tuple, cache) -> float:
    """Trains one results run (ModelArguments, DataArguments, ORPOConfig) on one thread, as every
    compared run is (see `pick_threads`), with the shared encoder cache; returns its seconds."""
    from rlhf_asr.trainer.run import run_training

    pick_threads(1)
    start = time.perf_counter()
    run_training(*args, encoder_cache=cache)
    return time.perf_counter() - start


def base_transcripts(options, corpus: Corpus):
    """(base folder, model, processor, encoder outputs per split, base transcripts per split): what
    every compared run of the results studies starts from, made once."""
    from rlhf_asr.model.loading import resolve_model_source

    base = Path(resolve_model_source(options.model))
    model, processor = load_decoding_model(base)
    hidden = encode_corpus(model, processor, corpus, cpu_cores())
    pick_threads(1)
    before = {
        split: decode_split(model, processor, hidden, corpus, split, options.decode_batch_size)
        for split in corpus.splits
    }
    return base, model, processor, hidden, before
