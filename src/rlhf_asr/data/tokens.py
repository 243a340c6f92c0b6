"""Transcripts to Whisper decoder token sequences.

A full sequence is `<|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>] text <|endoftext|>`.
English-only checkpoints have no language or task token. With timestamps, each segment is wrapped
in its start and end timestamp tokens and `<|notimestamps|>` is left out. A no-speech transcript
("", or no segments) is the prompt then `<|endoftext|>`; the chosen of a no-speech pair is what the
encoder's no-speech target builds (`encode_no_speech`, `data/nospeech_target.py`), by default the same.

Text is encoded as text only: a control token written inside a transcript (`<|endoftext|>`,
`<|0.00|>`) would otherwise become a real control token mid-target and teach the model to stop
or jump in time there. Such a transcript is refused rather than encoded character by character:
no speech contains these strings, so one found in a transcript is a data bug (a decoder dump with
special tokens kept, timestamps pasted into plain text), and training on the literal characters
would teach the model to write them. (`split_special_tokens` would not even cover timestamps:
the tokenizer does not count them as special.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rlhf_asr.data.audio import WHISPER_MAX_SECONDS
from rlhf_asr.data.manifest import SEGMENT_SLACK_SECONDS
from rlhf_asr.data.nospeech_target import DEFAULT_TARGET, no_speech_token_id, nospeech_target

TIMESTAMP_STEP_S = 0.02
MULTILINGUAL_VOCAB_SIZE = 51865
# Whisper's decoder position table (every released size). A full sequence, prompt + text +
# <|endoftext|>, trains when it is no longer than this: exactly what decoding can produce whole
# (see `max_text_tokens`), so every transcript the tool decodes can also be trained on.
MAX_TARGET_TOKENS = 448


def max_text_tokens(prefix_len: int, max_target_positions: int = MAX_TARGET_TOKENS) -> int:
    """Text tokens that fit after a prompt of `prefix_len` tokens, leaving room for <|endoftext|>.

    The one length limit of the tool: decoding generates at most this many tokens after the
    prompt, and training accepts a sequence of at most prompt + this + 1 (<|endoftext|>) tokens.
    A decoding cut off at the limit (a repetition loop) therefore still trains.
    """
    return max_target_positions - prefix_len - 1


class TranscriptError(ValueError):
    """A transcript that cannot become a decoder sequence; the message says why (no row: callers add it)."""


@dataclass(frozen=True)
class EncodedTranscript:
    """Token ids of one full decoder sequence; the first `prefix_len` ids are the task prompt."""

    ids: tuple[int, ...]
    prefix_len: int


class TranscriptEncoder:
    """Builds decoder sequences for one tokenizer, task and timestamp setting."""

    def __init__(self, tokenizer, task: str = "transcribe", timestamps: bool = False, nospeech: str = DEFAULT_TARGET):
        self.tokenizer = tokenizer
        self.task = task
        self.timestamps = timestamps
        self.nospeech_target = nospeech_target(nospeech)  # ValueError naming the choices
        vocab = tokenizer.get_vocab()
        # English-only vocabularies also list language tokens, unused; openai/whisper tells the two
        # kinds apart by size, as here.
        self.multilingual = len(tokenizer) >= MULTILINGUAL_VOCAB_SIZE
        self.sot = vocab["<|startoftranscript|>"]
        self.eot = vocab["<|endoftext|>"]
        self.no_timestamps = vocab["<|notimestamps|>"]
        self.no_speech = no_speech_token_id(vocab)
        self.task_id = vocab[f"<|{task}|>"]
        if timestamps and "<|0.00|>" not in vocab:
            raise ValueError("this tokenizer has no timestamp tokens (<|0.00|>); it cannot train with timestamps")
        self.timestamp_begin = vocab.get("<|0.00|>")
        self._vocab = vocab

    def known_languages(self) -> set[str] | None:
        """Language codes with a token, or None for English-only tokenizers (no language token)."""
        if not self.multilingual:
            return None
        return {tok[2:-2] for tok in self._vocab if _is_language_token(tok)}

    def prefix(self, language: str | None) -> list[int]:
        ids = [self.sot]
        if self.multilingual:
            if language is None:
                raise ValueError("a multilingual model needs a language for each row (set --language)")
            ids += [self._vocab[f"<|{language}|>"], self.task_id]
        if not self.timestamps:
            ids.append(self.no_timestamps)
        return ids

    def text_ids(self, text: str) -> list[int]:
        """Token ids of `text` as text; TranscriptError for control tokens or unencodable characters.

        "" (no speech) has none: its sequence is the prompt, then <|endoftext|>, which is what
        Whisper writes for silence (the leading space added below would otherwise be one token).
        """
        if text == "":
            return []
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate ("\ud800" in JSON): tokenizers raise TypeError
            bad = text[error.start : error.end]
            reason = f"transcript has a character that is not valid Unicode text ({bad!r}, a lone surrogate)"
            raise TranscriptError(reason) from None
        # Whisper was trained on text with a leading space, as its own transcripts start.
        ids = self.tokenizer.encode(" " + text.strip(), add_special_tokens=False)
        # Every control token (<|endoftext|>, languages, tasks, timestamps) has an id from <|endoftext|> on.
        control = [i for i in ids if i >= self.eot]
        if control:
            token = self.tokenizer.convert_ids_to_tokens(control[0])
            raise TranscriptError(
                f"transcript contains the Whisper control token {token!r} written as text; remove it "
                "(timestamps belong in the segment lists, not in the text)"
            )
        return ids

    def timestamp_id(self, seconds: float) -> int:
        """The timestamp token of `seconds`; the manifest's slack past 30 s is clamped to <|30.00|>."""
        if seconds > WHISPER_MAX_SECONDS + SEGMENT_SLACK_SECONDS + 1e-9:
            raise TranscriptError(
                f"timestamp {seconds:g} s is past Whisper's {WHISPER_MAX_SECONDS:g} s window "
                f"(at most {SEGMENT_SLACK_SECONDS:g} s over is accepted, as 30.00)"
            )
        return self.timestamp_begin + round(min(seconds, WHISPER_MAX_SECONDS) / TIMESTAMP_STEP_S)

    def encode(self, text: str, language: str | None) -> EncodedTranscript:
        prefix = self.prefix(language)
        return EncodedTranscript(tuple(prefix + self.text_ids(text) + [self.eot]), len(prefix))

    def encode_no_speech(self, language: str | None) -> EncodedTranscript:
        """The chosen of a no-speech pair, as the no-speech target builds it (a rejected "" stays `encode("")`)."""
        try:
            return EncodedTranscript(*self.nospeech_target.chosen_ids(self, language))
        except ValueError as error:
            raise TranscriptError(str(error)) from None

    def encode_segments(self, segments: Sequence, language: str | None) -> EncodedTranscript:
        """Segments with `.start`, `.end`, `.text` (seconds from the clip start)."""
        prefix = self.prefix(language)
        body: list[int] = []
        for segment in segments:
            body.append(self.timestamp_id(segment.start))
            body += self.text_ids(segment.text)
            body.append(self.timestamp_id(segment.end))
        return EncodedTranscript(tuple(prefix + body + [self.eot]), len(prefix))


def _is_language_token(token: str) -> bool:
    inner = token[2:-2]
    return (
        token.startswith("<|") and token.endswith("|>") and 2 <= len(inner) <= 3 and inner.isalpha() and inner.islower()
    )


_encoders: dict[tuple[int, str], tuple[object, TranscriptEncoder]] = {}


def transcript_encoder(processor_or_tokenizer, task: str = "transcribe") -> TranscriptEncoder:
    """The TranscriptEncoder of a processor's tokenizer, cached (building it reads the vocabulary)."""
    tokenizer = getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)
    key = (id(tokenizer), task)
    if key not in _encoders:  # the tokenizer is kept alive with it, so its id is not reused
        _encoders[key] = (tokenizer, TranscriptEncoder(tokenizer, task=task))
    return _encoders[key][1]
