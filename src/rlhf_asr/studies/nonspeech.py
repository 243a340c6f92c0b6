"""Non-speech splits of the studies' corpus: what the clips are, what they teach, how the demo reports them.

The issue's claim is about clips the model never trained on, so training and held-out clips differ
in kind AND in duration: training hears silence, white, pink and band-limited noise, tones and chords
of 1-10 s; the held-out clips are brown and blue noise, mains hum, arpeggios and mixtures (music,
tone or hum under noise) of 15-30 s. Both are made by the tool (`data/nonspeech.make_nonspeech`, seeded),
so every machine gets the same clips for a seed.

A clip is a corpus `Utterance` with an empty text (its `voice` holds the sound's kind), so it goes
through the demo's encoder, decoding and encoder cache like any speech clip; its pair comes from
`pairs.no_speech_rows`. Scores are those of `rlhf-asr evaluate` (`evaluation/hallucination.py`):
- hallucination rate: share of non-speech clips where the model wrote at least one word (after
  Whisper's English normalisation, so "..." alone is no word);
- repetition rate: share of outputs with a loop (an n-gram repeated 3+ times in a row; for speech
  also an output far longer than what was said).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile

from rlhf_asr.data.audio import load_audio
from rlhf_asr.data.nonspeech import NONSPEECH_KINDS, make_nonspeech, pad_speech
from rlhf_asr.data.synth_audio import SAMPLING_RATE
from rlhf_asr.evaluation.hallucination import nonspeech_rates, repetition_rate
from rlhf_asr.studies.corpus import Corpus, Utterance, write_jsonl

TRAIN_KINDS = ("silence", "white_noise", "pink_noise", "band_noise", "tone", "chords")
TRAIN_DURATIONS = (1.0, 2.0, 5.0, 10.0)  # seconds
HELD_OUT_KINDS = ("brown_noise", "blue_noise", "hum", "arpeggio", "mixture")
HELD_OUT_DURATIONS = (15.0, 20.0, 30.0)  # seconds
# Seconds of filler around each padded speech clip (`add_padded`): speech after a pause of 0-25 s,
# as in a long-form window that starts inside a pause or music.
PADDED_SECONDS = 25.0
# Seconds of held-out non-speech before each held-out clip of the after-pause split (`add_after_pause`):
# long enough that a model trained to end on non-speech clips of 1-10 s may stop before the speech.
PAUSE_SECONDS = 15.0
# split name -> (kinds, durations); the held-out split is what "hallucination rate" is measured on
NONSPEECH_SPLITS = {
    "nonspeech_train": (TRAIN_KINDS, TRAIN_DURATIONS),
    "nonspeech_test": (HELD_OUT_KINDS, HELD_OUT_DURATIONS),
}


def nonspeech_utterances(
    folder: Path, split: str, count: int, kinds: tuple[str, ...], durations: tuple[float, ...], seed: int
) -> list[Utterance]:
    """`count` generated clips of `kinds` (in turn) and `durations` (drawn), written under `folder/split/`."""
    unknown = set(kinds) - set(NONSPEECH_KINDS)
    if unknown:
        raise ValueError(f"unknown non-speech kinds {sorted(unknown)}")
    names = list(NONSPEECH_KINDS)
    indices = (index for index in range(10**9) if names[index % len(names)] in kinds)  # make_nonspeech cycles kinds
    rows = []
    for number, index in zip(range(count), indices):
        kind, _, _, samples = make_nonspeech(index, seed, durations)
        relative = f"{split}/{number:04d}_{kind}.wav"
        (folder / split).mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / relative, samples, SAMPLING_RATE, subtype="PCM_16")
        rows.append(Utterance("", kind, 0, relative, samples.size / SAMPLING_RATE, split))
    return rows


def add_nonspeech(corpus: Corpus, train: int, test: int, seed: int) -> Corpus:
    """Adds the splits of NONSPEECH_SPLITS (`train` and `test` clips) to `corpus`, manifests included."""
    for split, count in (("nonspeech_train", train), ("nonspeech_test", test)):
        if count > 0:
            kinds, durations = NONSPEECH_SPLITS[split]
            corpus.splits[split] = nonspeech_utterances(corpus.folder, split, count, kinds, durations, seed)
            write_jsonl(corpus.manifest(split), [u.asr_row() for u in corpus.splits[split]])
    return corpus


def _derived_split(corpus: Corpus, split: str, name: str, make_audio) -> str:
    """Adds split `name` (manifest too): each clip of `split` with the same text, its audio
    `make_audio(index, audio)`, written under `name/`. Returns `name`."""
    (corpus.folder / name).mkdir(parents=True, exist_ok=True)
    rows = []
    for index, utterance in enumerate(corpus.splits[split]):
        audio = make_audio(index, load_audio(corpus.folder / utterance.path))
        relative = f"{name}/{index:04d}.wav"
        soundfile.write(corpus.folder / relative, np.clip(audio, -1.0, 1.0), SAMPLING_RATE, subtype="PCM_16")
        rows.append(dataclasses.replace(utterance, path=relative, duration=audio.size / SAMPLING_RATE, split=name))
    corpus.splits[name] = rows
    write_jsonl(corpus.manifest(name), [u.asr_row() for u in rows])
    return name


def add_padded(corpus: Corpus, split: str = "train", fillers: str = "nonspeech_train", seed: int = 0) -> str:
    """Adds `<split>_padded`: each clip of `split` with `PADDED_SECONDS` of filler split at random
    before and after it, as `make-pairs --pad_silence` pads (`data.nonspeech.pad_speech`: digital
    silence, a generated noise, or a stretch of one of the `fillers` split's sounds). Only training
    sounds are used, so no held-out kind reaches training. Returns the split's name."""
    sounds = [corpus.folder / u.path for u in corpus.splits[fillers] if u.voice != "silence"]

    def padded(index: int, speech: np.ndarray) -> np.ndarray:
        return pad_speech(speech, PADDED_SECONDS, np.random.default_rng([seed, index]), sounds)[0]

    return _derived_split(corpus, split, f"{split}_padded", padded)


def add_after_pause(corpus: Corpus, split: str = "test_voices", pauses: str = "nonspeech_test") -> str:
    """Adds `<split>_after_pause`: each clip of `split` after `PAUSE_SECONDS` of one of the `pauses`
    split's sounds (in turn; looped or cut), as speech comes after music or noise at the start of a
    recording or of a long-form window. Held-out sounds and voices only. Returns the split's name."""
    sounds = corpus.splits[pauses]
    frames = round(PAUSE_SECONDS * SAMPLING_RATE)

    def after_pause(index: int, speech: np.ndarray) -> np.ndarray:
        pause = load_audio(corpus.folder / sounds[index % len(sounds)].path)
        return np.concatenate([np.resize(pause, frames), speech])

    return _derived_split(corpus, split, f"{split}_after_pause", after_pause)


def evaluate_nonspeech(
    corpus: Corpus, before: list[str], after: list[str], pairs: int, deployed: dict | None = None
) -> dict:
    """The demo's non-speech scores on the held-out clips before and after training: any output, words
    and loops under the demo's decoding, and `deployed` (evaluation/deployed.py) under users' decoders."""
    rows = corpus.splits["nonspeech_test"]
    references = [""] * len(rows)
    rates = {"before": nonspeech_rates(before), "after": nonspeech_rates(after)}  # scored once per side
    return {
        "clips": len(rows),
        "kinds": sorted({u.voice for u in rows}),
        "durations_s": sorted({round(u.duration) for u in rows}),
        "train_clips": len(corpus.splits.get("nonspeech_train", [])),
        "train_kinds": sorted({u.voice for u in corpus.splits.get("nonspeech_train", [])}),
        "pairs": pairs,
        "nonspeech_output_rate_before": rates["before"]["nonspeech_output_rate"],
        "nonspeech_output_rate_after": rates["after"]["nonspeech_output_rate"],
        "hallucination_rate_before": rates["before"]["hallucination_rate"],
        "hallucination_rate_after": rates["after"]["hallucination_rate"],
        "repetition_rate_before": repetition_rate(references, before),
        "repetition_rate_after": repetition_rate(references, after),
        "decoders": deployed,  # {"pipeline" | "faster_whisper": {"before" | "after": rates}}
    }
