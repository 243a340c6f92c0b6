"""Transcripts to Whisper decoder token sequences.

A full sequence is `<|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>] text <|endoftext|>`.
English-only checkpoints have no language or task token. With timestamps, each segment is wrapped
in its start and end timestamp tokens and `<|notimestamps|>` is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TIMESTAMP_STEP_S = 0.02
MAX_TARGET_TOKENS = 448
MULTILINGUAL_VOCAB_SIZE = 51865


@dataclass(frozen=True)
class EncodedTranscript:
    """Token ids of one full decoder sequence; the first `prefix_len` ids are the task prompt."""

    ids: tuple[int, ...]
    prefix_len: int


class TranscriptEncoder:
    """Builds decoder sequences for one tokenizer, task and timestamp setting."""

    def __init__(self, tokenizer, task: str = "transcribe", timestamps: bool = False):
        self.tokenizer = tokenizer
        self.task = task
        self.timestamps = timestamps
        vocab = tokenizer.get_vocab()
        # English-only vocabularies also list language tokens, unused; openai/whisper tells the two
        # kinds apart by size, as here.
        self.multilingual = len(tokenizer) >= MULTILINGUAL_VOCAB_SIZE
        self.sot = vocab["<|startoftranscript|>"]
        self.eot = vocab["<|endoftext|>"]
        self.no_timestamps = vocab["<|notimestamps|>"]
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
        # Whisper was trained on text with a leading space, as its own transcripts start.
        return self.tokenizer.encode(" " + text.strip(), add_special_tokens=False)

    def timestamp_id(self, seconds: float) -> int:
        return self.timestamp_begin + round(seconds / TIMESTAMP_STEP_S)

    def encode(self, text: str, language: str | None) -> EncodedTranscript:
        prefix = self.prefix(language)
        return EncodedTranscript(tuple(prefix + self.text_ids(text) + [self.eot]), len(prefix))

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
    return token.startswith("<|") and token.endswith("|>") and 2 <= len(inner) <= 3 and inner.isalpha() and inner.islower()
