"""What the chosen side of a no-speech pair is, and whether deployed decoders may then write nothing.

Whisper's generation config lists <|endoftext|> in `begin_suppress_tokens`, and `generate`, the
`transformers` pipeline and faster-whisper (`suppress_blank`) forbid it as the first token. A model
trained to end right after the prompt on silence therefore cannot do so where it is deployed: it
writes the nearest thing it may write, often ".". Two ways out, and their combination:

- `EndOfText` ("eot"): the chosen is the prompt then <|endoftext|>, and the saved generation config
  lets <|endoftext|> come first (`model/empty_output.py`), so `generate`, the pipeline and the
  CTranslate2 export (whose converter copies `begin_suppress_tokens` to `suppress_ids_begin`) can
  write "".
- `NoSpeechToken` ("nospeech"): the chosen is Whisper's own no-speech path, <|startoftranscript|>
  <|nospeech|> <|endoftext|>, which Whisper was pre-trained on. Decoders that look at that
  probability (openai's `transcribe`, faster-whisper, long-form `generate` with `no_speech_threshold`)
  skip such a window when its text is also unlikely; the generation config is left as it was, so the
  pipeline's short-form decoding is unchanged.
- `Both` ("both"): the no-speech path as chosen, and the generation config of "eot".

The chosen of a speech pair and every rejected are unchanged by the target.
"""

from __future__ import annotations

from dataclasses import dataclass

# English-only vocabularies name the same token <|nocaptions|> (openai/whisper's tokenizer does the same).
NO_SPEECH_TOKENS = ("<|nospeech|>", "<|nocaptions|>")


@dataclass(frozen=True)
class EndOfText:
    name: str = "eot"
    # The saved generation config lets <|endoftext|> be the first token (the model may write nothing).
    lets_empty_output: bool = True

    def chosen_ids(self, encoder, language: str | None) -> tuple[tuple[int, ...], int]:
        """(ids, prefix_len): the task prompt, then <|endoftext|>."""
        prefix = encoder.prefix(language)
        return (*prefix, encoder.eot), len(prefix)


@dataclass(frozen=True)
class NoSpeechToken:
    name: str = "nospeech"
    lets_empty_output: bool = False

    def chosen_ids(self, encoder, language: str | None) -> tuple[tuple[int, ...], int]:
        """(ids, prefix_len): <|startoftranscript|> <|nospeech|> <|endoftext|>; only the first is prompt.

        The <|nospeech|> logit at <|startoftranscript|> is the no-speech probability decoders read.
        """
        if encoder.no_speech is None:
            raise ValueError("this tokenizer has no <|nospeech|> token; use --nospeech_target eot")
        return (encoder.sot, encoder.no_speech, encoder.eot), 1


@dataclass(frozen=True)
class Both(NoSpeechToken):
    name: str = "both"
    lets_empty_output: bool = True


TARGETS = {target.name: target for target in (EndOfText(), NoSpeechToken(), Both())}
DEFAULT_TARGET = "eot"


def nospeech_target(name: str):
    """The target named `name` (a key of TARGETS); ValueError naming the choices otherwise."""
    if name not in TARGETS:
        raise ValueError(f"--nospeech_target {name!r}: choose from {', '.join(TARGETS)}")
    return TARGETS[name]


def no_speech_token_id(vocab: dict[str, int]) -> int | None:
    """The id of <|nospeech|> (<|nocaptions|> in English-only vocabularies), or None."""
    return next((vocab[token] for token in NO_SPEECH_TOKENS if token in vocab), None)
