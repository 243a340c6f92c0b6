"""Preference examples as model inputs: log-Mel features and the two token sequences.

Transcripts are tokenized once, up front, so a transcript too long for Whisper's decoder is
reported before training starts (with its manifest line), not in the middle of an epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from rlhf_asr.data.audio import AudioError, load_audio
from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, EncodedTranscript, TranscriptEncoder, TranscriptError
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.encoder_cache import audio_key

SAMPLING_RATE = 16_000
Augmenter = Callable[[np.ndarray, int], np.ndarray]


def encode_pair(
    example, encoder: TranscriptEncoder, language: str | None
) -> tuple[EncodedTranscript, EncodedTranscript]:
    """Chosen and rejected token sequences of one example (segments when timestamps are on)."""
    if encoder.timestamps:
        return (
            encoder.encode_segments(example.chosen_segments, language),
            encoder.encode_segments(example.rejected_segments, language),
        )
    return encoder.encode(example.chosen, language), encoder.encode(example.rejected, language)


def non_finite_features(example, augmented: bool) -> str:
    """The one-line error for a clip whose log-Mel features hold NaN or inf.

    Never handed to the model: one such value makes every trained weight NaN. Not skipped either,
    even with --skip_invalid_rows: the manifest check already skips bad files, so what is left is
    the augmentation or a file changed since, and dropping items mid-epoch would hide it.
    """
    cause = "after augmentation: check --augment_config_path" if augmented else "the samples overflow float32"
    where = f"{example.source}: {example.audio_path}"
    return f"{where}: log-Mel features hold NaN or inf ({cause}); stopped before training on them"


class PreferenceDataset(Dataset):
    """Items: `input_features` [n_mels, 3000] float32, `chosen`, `rejected`, `index`.

    `index` is the audio file's `audio_key` (path, size, mtime), not the row's position: the
    encoder cache keys outputs by it, and row i of another manifest is other audio.

    Args:
        examples: PreferenceExample rows from the manifest reader.
        feature_extractor: the model's own WhisperFeatureExtractor.
        encoder: builds the decoder token sequences.
        default_language: language code for rows without one (multilingual models only).
        augmenter: waveform augmentation, for the training split only.
        skip_invalid: drop (and count) rows whose transcript is too long instead of stopping.
    """

    def __init__(
        self,
        examples: Sequence,
        feature_extractor,
        encoder: TranscriptEncoder,
        default_language: str | None = None,
        augmenter: Augmenter | None = None,
        skip_invalid: bool = False,
    ):
        self.feature_extractor = feature_extractor
        self.augmenter = augmenter
        self.examples, self.pairs, self.skipped = [], [], []
        for example in examples:
            language = (example.language or default_language) if encoder.multilingual else None
            try:
                pair = encode_pair(example, encoder, language)
            except TranscriptError as error:
                self.skipped.append(f"{example.source}: {error}")
                continue
            longest = max(len(pair[0].ids), len(pair[1].ids))
            if longest > MAX_TARGET_TOKENS:
                self.skipped.append(
                    f"{example.source}: transcript is {longest} tokens, Whisper's limit is {MAX_TARGET_TOKENS}"
                )
                continue
            self.examples.append(example)
            self.pairs.append(pair)
        if len(self.skipped) == 1 and not skip_invalid:  # one bad row: one line
            raise UserInputError(f"{self.skipped[0]} (--skip_invalid_rows True skips such rows and reports how many)")
        if self.skipped and not skip_invalid:
            shown = "\n  ".join(self.skipped[:5])
            raise UserInputError(
                f"{len(self.skipped)} row(s) cannot be trained on:\n  {shown}\n"
                "(--skip_invalid_rows True skips such rows and reports how many)"
            )

    def __len__(self) -> int:
        return len(self.examples)

    def transcript_lengths(self) -> list[int]:
        """Decoder tokens per pair (chosen + rejected), for length-grouped batching."""
        return [len(c.ids) + len(r.ids) for c, r in self.pairs]

    def __getitem__(self, index: int) -> dict:
        return make_item(self.examples[index], self.pairs[index], self.feature_extractor, self.augmenter)


def make_item(example, pair, feature_extractor, augmenter: Augmenter | None) -> dict:
    """One training item: features of the example's audio, its encoded pair, and its audio key."""
    try:
        audio = load_audio(example.audio_path, SAMPLING_RATE)  # finite: NaN/inf samples raise
    except AudioError as error:  # the file changed since the manifest was checked
        raise UserInputError(f"{example.source}: {error}") from None
    if augmenter is not None:
        audio = augmenter(audio, SAMPLING_RATE)
    # The torch STFT path is several times faster than the numpy one on CPU.
    features = feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features[0]
    if not torch.isfinite(features).all():
        raise UserInputError(non_finite_features(example, augmented=augmenter is not None))
    chosen, rejected = pair
    key = audio_key(example.audio_path)
    return {"input_features": features.float().numpy(), "chosen": chosen, "rejected": rejected, "index": key}


class StreamingPreferenceDataset(IterableDataset):
    """PreferenceDataset's items from a stream of examples (data/stream.py), for `--streaming` with `--max_steps`.

    Each example is encoded when reached; a transcript too long (or not encodable) stops the run
    there, or with `skip_invalid` is skipped and counted in `skipped` (first pass only). A
    multilingual model's row without a language, and no default, stops the run: never a guess.
    """

    def __init__(
        self,
        examples: Iterable,
        feature_extractor,
        encoder: TranscriptEncoder,
        default_language: str | None = None,
        augmenter: Augmenter | None = None,
        skip_invalid: bool = False,
    ):
        self.examples, self.feature_extractor, self.encoder = examples, feature_extractor, encoder
        self.default_language, self.augmenter, self.skip_invalid = default_language, augmenter, skip_invalid
        self.skipped: list[str] = []
        self.passes = 0

    def _pair(self, example):
        language = (example.language or self.default_language) if self.encoder.multilingual else None
        if self.encoder.multilingual and language is None:
            raise UserInputError(
                f'{example.source}: no "language" and this model is multilingual: pass --language (e.g. --language en)'
            )
        try:
            pair = encode_pair(example, self.encoder, language)
        except TranscriptError as error:
            return None, f"{example.source}: {error}"
        longest = max(len(pair[0].ids), len(pair[1].ids))
        if longest > MAX_TARGET_TOKENS:
            return None, f"{example.source}: transcript is {longest} tokens, Whisper's limit is {MAX_TARGET_TOKENS}"
        return pair, None

    def __iter__(self) -> Iterator[dict]:
        self.passes += 1
        for example in self.examples:
            pair, problem = self._pair(example)
            if problem:
                if not self.skip_invalid:
                    raise UserInputError(f"{problem} (--skip_invalid_rows True skips such rows and reports how many)")
                if self.passes == 1:
                    self.skipped.append(problem)
                continue
            yield make_item(example, pair, self.feature_extractor, self.augmenter)
