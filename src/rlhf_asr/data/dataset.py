"""Preference examples as model inputs: log-Mel features and the two token sequences.

Transcripts are tokenized once, up front, so a transcript too long for Whisper's decoder is
reported before training starts (with its manifest line), not in the middle of an epoch.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from rlhf_asr.data.audio import AudioError, load_audio
from rlhf_asr.data.stream import pass_rng, read_summary, shuffled
from rlhf_asr.data.text_rules import is_silent
from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, EncodedTranscript, TranscriptEncoder, TranscriptError
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.encoder_cache import audio_key

logger = logging.getLogger(__name__)

SAMPLING_RATE = 16_000
Augmenter = Callable[[np.ndarray, int], np.ndarray]


def encode_pair(
    example, encoder: TranscriptEncoder, language: str | None
) -> tuple[EncodedTranscript, EncodedTranscript]:
    """Chosen and rejected token sequences of one example (segments when timestamps are on).

    A no-speech chosen (no text, or no segment) is the encoder's no-speech target.
    """
    if encoder.timestamps:
        rejected = encoder.encode_segments(example.rejected_segments, language)
        chosen = example.chosen_segments
    else:
        rejected = encoder.encode(example.rejected, language)
        chosen = example.chosen
    if is_no_speech(example, encoder):
        return encoder.encode_no_speech(language), rejected
    if encoder.timestamps:
        return encoder.encode_segments(chosen, language), rejected
    return encoder.encode(chosen, language), rejected


def is_no_speech(example, encoder: TranscriptEncoder) -> bool:
    """A no-speech pair: its chosen has no text (or, with timestamps, no segment)."""
    return not example.chosen_segments if encoder.timestamps else is_silent(example.chosen)


def non_finite_features(example, augmented: bool) -> str:
    """The one-line error for a clip whose log-Mel features hold NaN or inf.

    Never handed to the model: one such value makes every trained weight NaN. Not skipped either,
    even with --skip_invalid_rows: the manifest check already skips bad files, so what is left is
    the augmentation or a file changed since, and dropping items mid-epoch would hide it.
    """
    cause = "after augmentation: check --augment_config_path" if augmented else "the samples overflow float32"
    where = f"{example.where}: {example.audio_path}"
    return f"{where}: log-Mel features hold NaN or inf ({cause}); stopped before training on them"


def row_language(example, encoder: TranscriptEncoder, default_language: str | None) -> str | None:
    """The language token a row is encoded with: its own, else the run's default; None for English-only models."""
    return (example.language or default_language) if encoder.multilingual else None


def encoded_or_problem(
    example, language: str | None, encode: Callable[..., tuple], sequences: Callable[[tuple], tuple] = tuple
) -> tuple[tuple | None, tuple[str, str] | None]:
    """(`encode(example, language)`, None), or (None, (problem naming the row, its kind)) when one
    transcript cannot become a decoder sequence or one of its `sequences` (EncodedTranscript) is
    longer than Whisper's decoder takes."""
    try:
        row = encode(example, language)
    except TranscriptError as error:
        return None, (f"{example.where}: {error}", "not encodable")
    longest = max(len(transcript.ids) for transcript in sequences(row))
    if longest > MAX_TARGET_TOKENS:
        return None, (f"{example.where}: transcript is {longest} tokens, Whisper's limit is {MAX_TARGET_TOKENS}",
                      "transcript too long")  # fmt: skip
    return row, None


def refuse_skipped(skipped: list[str]) -> None:
    """Rows that cannot be trained on, without --skip_invalid_rows: one line for one row, else the first five."""
    if len(skipped) == 1:
        raise UserInputError(f"{skipped[0]} (--skip_invalid_rows True skips such rows and reports how many)")
    if skipped:
        shown = "\n  ".join(skipped[:5])
        raise UserInputError(
            f"{len(skipped)} row(s) cannot be trained on:\n  {shown}\n"
            "(--skip_invalid_rows True skips such rows and reports how many)"
        )


class EncodedDataset(Dataset):
    """Rows tokenized up front, audio loaded per item: what the pair and K-best training sets share.

    A subclass says how a row is encoded (`encode`; `sequences`: its decoder sequences, when the
    encoded row holds more) and what an item holds besides the features and `index` (`item`). `index` is the audio
    file's `audio_key` (path, size, mtime), not the row's position: the encoder cache keys outputs
    by it, and row i of another manifest is other audio.
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
        self.feature_extractor, self.encoder, self.augmenter = feature_extractor, encoder, augmenter
        self.examples, self.encoded, self.skipped = [], [], []
        self.no_speech_rows = 0  # rows whose chosen (reference) is the no-speech target
        for example in examples:
            language = row_language(example, encoder, default_language)
            row, problem = encoded_or_problem(example, language, self.encode, self.sequences)
            if problem:
                self.skipped.append(problem[0])
                continue
            self.examples.append(example)
            self.encoded.append(row)
            self.no_speech_rows += self.is_no_speech(example)
        if not skip_invalid:
            refuse_skipped(self.skipped)

    def encode(self, example, language: str | None) -> tuple:
        raise NotImplementedError

    def sequences(self, row: tuple) -> tuple[EncodedTranscript, ...]:
        """The decoder sequences of an encoded row (a pair: the row itself)."""
        return row

    def is_no_speech(self, example) -> bool:
        return example.no_speech

    def item(self, index: int) -> dict:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.examples)

    def transcript_lengths(self) -> list[int]:
        """Decoder tokens per row (all its transcripts), for length-grouped batching."""
        return [sum(len(transcript.ids) for transcript in self.sequences(row)) for row in self.encoded]

    def encoded_rows(self):
        """(audio path, the row's transcripts as encoded) per row: what the DPO reference's fingerprint covers."""
        return ((example.audio_path, self.sequences(row)) for example, row in zip(self.examples, self.encoded))

    def __getitem__(self, index: int) -> dict:
        example = self.examples[index]
        features = audio_features(example, self.feature_extractor, self.augmenter)
        return {"input_features": features, **self.item(index), "index": audio_key(example.audio_path)}


class PreferenceDataset(EncodedDataset):
    """Items: `input_features` [n_mels, 3000] float32, `chosen`, `rejected` (EncodedTranscript), `index`.

    Args:
        examples: PreferenceExample rows from the manifest reader.
        feature_extractor: the model's own WhisperFeatureExtractor.
        encoder: builds the decoder token sequences.
        default_language: language code for rows without one (multilingual models only).
        augmenter: waveform augmentation, for the training split only.
        skip_invalid: drop (and count) rows whose transcript is too long instead of stopping.
    """

    @property
    def pairs(self) -> list[tuple[EncodedTranscript, EncodedTranscript]]:
        return self.encoded

    def encode(self, example, language: str | None) -> tuple[EncodedTranscript, EncodedTranscript]:
        return encode_pair(example, self.encoder, language)

    def is_no_speech(self, example) -> bool:
        return is_no_speech(example, self.encoder)

    def item(self, index: int) -> dict:
        chosen, rejected = self.encoded[index]
        return {"chosen": chosen, "rejected": rejected}


def audio_features(example, feature_extractor, augmenter: Augmenter | None) -> np.ndarray:
    """[n_mels, 3000] float32 log-Mel features of the example's audio (augmented where asked), checked finite."""
    try:
        audio = load_audio(example.audio_path, SAMPLING_RATE)  # finite: NaN/inf samples raise
    except AudioError as error:  # the file changed since the manifest was checked
        raise UserInputError(f"{example.where}: {error}") from None
    if augmenter is not None:
        audio = augmenter(audio, SAMPLING_RATE)
    # The torch STFT path is several times faster than the numpy one on CPU.
    features = feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features[0]
    if not torch.isfinite(features).all():
        raise UserInputError(non_finite_features(example, augmented=augmenter is not None))
    return features.float().numpy()


def make_item(example, pair, feature_extractor, augmenter: Augmenter | None) -> dict:
    """One training item of a streamed pair: features of the example's audio, its encoded pair, and its audio key."""
    chosen, rejected = pair
    features = audio_features(example, feature_extractor, augmenter)
    return {"input_features": features, "chosen": chosen, "rejected": rejected, "index": audio_key(example.audio_path)}


class StreamingPreferenceDataset(IterableDataset):
    """PreferenceDataset's items from a stream of examples (data/stream.py), for `--streaming` with `--max_steps`.

    Each example is encoded when reached; a transcript too long (or not encodable) stops the run
    there, or with `skip_invalid` is skipped and counted in `skipped` (first pass only), and the
    first pass's rows read and skipped are said in one line when it ends. A multilingual model's
    row without a language, and no default, stops the run: never a guess.

    Each pass is shuffled with a `shuffle_buffer`-row buffer (data/stream.py: `shuffled`; 0 or 1:
    stream order), seeded by `seed` and the pass: the Trainer numbers the passes (`set_epoch`),
    and `resume_after` makes a resumed run continue the order where its checkpoint left it.
    """

    def __init__(
        self,
        examples: Iterable,
        feature_extractor,
        encoder: TranscriptEncoder,
        default_language: str | None = None,
        augmenter: Augmenter | None = None,
        skip_invalid: bool = False,
        shuffle_buffer: int = 0,
        seed: int = 0,
    ):
        self.examples, self.feature_extractor, self.encoder = examples, feature_extractor, encoder
        self.default_language, self.augmenter, self.skip_invalid = default_language, augmenter, skip_invalid
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.skipped: list[str] = []  # "where: reason" of the first pass
        self.passes = 0  # iterations started
        self._skip_kinds: Counter = Counter()
        self._rows_seen = 0  # rows of the first pass reached here (a stream counts its own)
        self._first_pass_done = False
        self._epoch: int | None = None  # the pass the Trainer asked for next
        self._pass_offset = 0  # passes a resume went through before the Trainer's epoch 0
        self._resume: tuple[int, int, int, bool] | None = None
        self._said = False  # the first pass's read summary, said once

    def set_epoch(self, epoch: int) -> None:
        """The Trainer's epoch (through accelerate's data loader): the next pass is pass `epoch`."""
        self._epoch = epoch

    def resume_after(self, steps: int, batch_size: int, accumulation: int = 1, drop_last: bool = False) -> None:
        """Start the next pass where a run that took `steps` optimizer steps of `accumulation`
        batches of `batch_size` rows stood: inside its first pass or a later one.

        Passes the run had finished are read (rows checked and encoded, no audio loaded) to count
        their steps, as the Trainer took them: a pass's last batch short (or dropped), and its last
        step on fewer batches. The Trainer's own skip would load each skipped clip and could not
        go past the first pass.
        """
        self._resume = (steps, batch_size, accumulation, drop_last)

    def _pair(self, example):
        """(pair, None), or (None, (problem, kind)) for a row that cannot be trained on."""
        language = row_language(example, self.encoder, self.default_language)
        if self.encoder.multilingual and language is None:
            raise UserInputError(
                f'{example.where}: no "language" and this model is multilingual: pass --language (e.g. --language en)'
            )
        return encoded_or_problem(example, language, lambda row, code: encode_pair(row, self.encoder, code))

    def _encoded(self) -> Iterator[tuple]:
        """(example, pair) of one pass in stream order; the first pass counts what it skips."""
        counting = not self._first_pass_done
        for example in self.examples:
            self._rows_seen += counting
            pair, problem = self._pair(example)
            if problem:
                if not self.skip_invalid:
                    raise UserInputError(
                        f"{problem[0]} (--skip_invalid_rows True skips such rows and reports how many)"
                    )
                if counting:
                    self.skipped.append(problem[0])
                    self._skip_kinds[problem[1]] += 1
                continue
            yield example, pair
        if counting:
            self._first_pass_done = True
            self.say_rows_read()

    def _pass(self, index: int) -> Iterator[tuple]:
        return shuffled(self._encoded(), self.shuffle_buffer, pass_rng(self.seed, index))

    def _resumed_pass(self, index: int) -> tuple[int, Iterator[tuple]]:
        """(pass index, the rest of that pass) at the point `resume_after` named."""
        steps, batch_size, accumulation, drop_last = self._resume
        self._resume = None
        while True:
            rest = self._pass(index)
            wanted = steps * accumulation * batch_size
            taken = sum(1 for _ in itertools.islice(rest, wanted))
            if taken == wanted or taken == 0:  # the point is in this pass (or at its end)
                return index, rest
            batches = taken // batch_size if drop_last else math.ceil(taken / batch_size)
            steps -= math.ceil(batches / accumulation)
            index += 1

    def __iter__(self) -> Iterator[dict]:
        index = (self.passes if self._epoch is None else self._epoch) + self._pass_offset
        self.passes += 1
        self._epoch = None
        if self._resume is not None:
            start = index
            index, pairs = self._resumed_pass(index)
            self._pass_offset += index - start
        else:
            pairs = self._pass(index)
        for example, pair in pairs:
            yield make_item(example, pair, self.feature_extractor, self.augmenter)

    def say_rows_read(self) -> None:
        """The first pass's rows read and skipped, by kind, in one line (once; at the run's end, what was read)."""
        if self._said:
            return
        self._said = True
        problems = getattr(self.examples, "skipped", [])  # a stream's own row checks (data/stream.py)
        kinds = Counter(problem.kind for problem in problems) + self._skip_kinds
        rows = getattr(self.examples, "rows_read", self._rows_seen)
        label = getattr(self.examples, "label", "the training stream")
        line = read_summary(label, rows, kinds, self._first_pass_done)
        (logger.warning if kinds else logger.info)(line)
