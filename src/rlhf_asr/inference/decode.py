"""Decoding and teacher-forced scoring for base, merged and PEFT Whisper models: the one decoding layer.

Two entry points: `decode_encoded` for audio already through the encoder (mining, evaluation and
the demo encode once and decode, detect languages and score from that one output) and
`decode_audio` for raw 16 kHz arrays. `transcribe_batch` is `decode_audio`'s texts-only view
(`rlhf-asr transcribe`); `score_texts` / `sequence_logprobs` score given texts the same two ways.

Decoding calls the generic `GenerationMixin.generate` on the Whisper core with the task prompt
as `decoder_input_ids`, not Whisper's own `generate`: in transformers 5 that one answers
`num_return_sequences=N` with beam search by running N identical beam searches (it copies the
audio N times), so an n-best list would be N copies of the best. The generic path gives real
n-best lists, applies the same suppress-token rules from the generation config, and takes the
encoder output, so each audio is encoded once for language detection, decoding and scoring.
Audio is cut to Whisper's 30 s window here; longer audio goes through `inference.longform` (see `over_window`).

The transcripts equal `transformers.pipeline("automatic-speech-recognition")`'s, which calls
`WhisperForConditionalGeneration.generate` with the model's generation config (prompt, suppressed
tokens, length rule) plus its own default of `num_beams=5` where the generation config sets no
beam width: `default_num_beams` applies the same rule, so `num_beams=None` decodes as the pipeline
does and `num_beams=1` is greedy (tests/evaluation/test_evaluation.py checks both, docs/decoding.md).

Scores are teacher-forced mean per-token log-probs of the text as training tokenises it
(`TranscriptEncoder`: leading space, `<|endoftext|>` scored, prompt not scored), so a pair's
ranking by score is the ranking the ORPO loss sees.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import GenerationMixin
from transformers.modeling_outputs import BaseModelOutput

from rlhf_asr.data.audio import WHISPER_MAX_SECONDS, WHISPER_SAMPLING_RATE
from rlhf_asr.data.collator import pad_decoder_sequences
from rlhf_asr.data.language import normalize_language
from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, max_text_tokens, transcript_encoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.loss.logps import chunked_token_logps, sequence_logps
from rlhf_asr.model.core import whisper_core


class _NoPaddingToMask(logging.Filter):
    """`generate` warns that a batch has no attention mask because Whisper's pad token is its end token.
    Here nothing is padded: every prompt of a batch has one length (one tensor) and the encoder outputs
    are whole windows, so the warning would only alarm the user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "attention mask is not set with a batched input" not in record.getMessage()


logging.getLogger("transformers.generation.utils").addFilter(_NoPaddingToMask())

Languages = str | None | Sequence[str | None]

# transformers.pipeline's beam width where the generation config sets none
# (AutomaticSpeechRecognitionPipeline._default_generation_config, "follows openai's whisper"); faster-whisper's too.
PIPELINE_NUM_BEAMS = 5


def default_num_beams(generation_config) -> int:
    """The beam width the pipeline decodes with: the generation config's if it sets one, else 5.

    "Sets one" as the pipeline reads it: a value that differs from GenerationConfig's default (1).
    """
    return generation_config.num_beams if "num_beams" in generation_config.to_diff_dict() else PIPELINE_NUM_BEAMS


@dataclass(frozen=True)
class Candidate:
    text: str
    logprob: float | None = None  # mean per-token log-prob, when scored
    finished: bool = True  # ended with <|endoftext|>, not cut by a `max_new_tokens` cap


def check_language(processor, language: str | None) -> str | None:
    """A Whisper language code the model can use, or None; UserInputError otherwise."""
    if language is None:
        return None
    try:
        code = normalize_language(language)
    except ValueError as error:
        raise UserInputError(str(error)) from None
    known = transcript_encoder(processor).known_languages()
    if known is None:
        if code != "en":
            raise UserInputError(f"this model is English-only; it cannot transcribe language {language!r}")
        return code
    if code not in known:
        raise UserInputError(f"this model's tokenizer has no language token for {language!r}")
    return code


def _per_row(language: Languages, count: int) -> list[str | None]:
    if language is None or isinstance(language, str):
        return [language] * count
    languages = list(language)
    if len(languages) != count:
        raise ValueError(f"{len(languages)} languages for {count} audios")
    return languages


def encode_audio(model, processor, audios: Sequence[np.ndarray]) -> torch.Tensor:
    """Encoder output [B, frames, d] for raw 16 kHz audio (cut or padded to 30 s)."""
    core = whisper_core(model)
    features = processor.feature_extractor(
        list(audios), sampling_rate=WHISPER_SAMPLING_RATE, return_tensors="pt"
    ).input_features
    features = features.to(device=core.device, dtype=core.dtype)
    with torch.no_grad():
        return core.model.encoder(features).last_hidden_state


def resolve_languages(model, processor, hidden: torch.Tensor, language: Languages) -> list[str]:
    """Language code of each audio: given, detected (multilingual, none given) or "en" (English-only)."""
    languages = [check_language(processor, lang) for lang in _per_row(language, hidden.shape[0])]
    if not transcript_encoder(processor).multilingual:
        return ["en"] * len(languages)
    if any(lang is None for lang in languages):
        detected = detect_languages(model, processor, hidden)
        languages = [lang or found for lang, found in zip(languages, detected)]
    return languages


def decoder_prefixes(processor, languages: list[str], task: str = "transcribe") -> list[list[int]]:
    """The task prompt (<|startoftranscript|> ... <|notimestamps|>) of each audio."""
    encoder = transcript_encoder(processor, task)
    return [encoder.prefix(lang) for lang in languages]


def detect_languages(model, processor, hidden: torch.Tensor) -> list[str]:
    """Most probable language token after <|startoftranscript|>, per audio."""
    encoder = transcript_encoder(processor)
    codes = sorted(encoder.known_languages() or [])
    ids = encoder.tokenizer.convert_tokens_to_ids([f"<|{code}|>" for code in codes])
    core = whisper_core(model)
    start = torch.full((hidden.shape[0], 1), encoder.sot, dtype=torch.long, device=hidden.device)
    with torch.no_grad():
        out = core.model.decoder(input_ids=start, encoder_hidden_states=hidden, use_cache=False)
        logits = core.proj_out(out.last_hidden_state[:, -1])[:, ids]
    return [codes[i] for i in logits.argmax(-1).tolist()]


def over_window(audios: Sequence[np.ndarray]) -> list[float | None]:
    """Per audio, its duration in seconds when longer than Whisper's window (only its start is heard), else None."""
    seconds = [len(audio) / WHISPER_SAMPLING_RATE for audio in audios]
    return [s if s > WHISPER_MAX_SECONDS else None for s in seconds]


def _generate(
    model, hidden, prefixes, *, num_beams, num_return_sequences, do_sample, temperature, max_new_tokens=None
) -> torch.Tensor:
    """Generated ids after the prompt, [B * num_return_sequences, L], grouped by audio.

    `num_beams=None`: the pipeline's (`default_num_beams`).
    """
    core = whisper_core(model)
    if num_beams is None:
        num_beams = default_num_beams(core.generation_config)
    prompt = torch.tensor(prefixes, dtype=torch.long, device=hidden.device)
    options = dict(num_return_sequences=num_return_sequences, do_sample=do_sample)
    if do_sample:
        options.update(num_beams=1, temperature=1.0 if temperature is None else temperature)
    else:
        options.update(num_beams=max(num_beams, num_return_sequences))
    options.update(_length_limit(core, prompt.shape[1], max_new_tokens))
    with torch.no_grad():
        out = GenerationMixin.generate(
            core, encoder_outputs=BaseModelOutput(last_hidden_state=hidden), decoder_input_ids=prompt, **options
        )
    return out[:, prompt.shape[1] :]


def _length_limit(core, prompt_len: int, cap: int | None = None) -> dict:
    """Whisper's own rule: `max_length` counts generated tokens, capped by the position table less
    one token, so that a decoding cut off at the limit still trains with its <|endoftext|>.

    `cap` (new tokens) only lowers it; rows it cuts come back with `finished=False`.
    """
    config = core.generation_config
    limit = prompt_len + max_text_tokens(prompt_len, core.config.max_target_positions)
    if config.max_new_tokens is not None:
        new = min(config.max_new_tokens, limit - prompt_len)
    else:
        new = min((config.max_length or MAX_TARGET_TOKENS) + prompt_len, limit) - prompt_len
    return {"max_length": prompt_len + (new if cap is None else min(new, cap))}


def score_texts(
    model, processor, hidden: torch.Tensor, owners: list[int], prefixes: list[list[int]], texts: list[str]
) -> list[float]:
    """Mean per-token log-prob of texts[i] given audio owners[i] (rows of `hidden`)."""
    if not texts:
        return []
    encoder = transcript_encoder(processor)
    core = whisper_core(model)
    sequences, starts = [], []
    for owner, text in zip(owners, texts):
        prefix = prefixes[owner]
        body = (encoder.text_ids(text) + [encoder.eot])[: core.config.max_target_positions + 1 - len(prefix)]
        sequences.append(tuple(prefix + body))
        starts.append(len(prefix))
    input_ids, labels = pad_decoder_sequences(sequences, starts, encoder.eot)
    input_ids, labels = input_ids.to(hidden.device), labels.to(hidden.device)
    index = torch.tensor(owners, device=hidden.device)
    with torch.no_grad():
        out = core.model.decoder(input_ids=input_ids, encoder_hidden_states=hidden[index], use_cache=False)
        token_logps = chunked_token_logps(out.last_hidden_state, core.get_output_embeddings().weight, labels)
        total, count = sequence_logps(token_logps, labels)
    return (total / count.clamp(min=1)).tolist()


def decode_encoded(
    model,
    processor,
    hidden: torch.Tensor,
    prefixes: list[list[int]],
    *,
    num_beams: int | None = None,
    num_return_sequences: int = 1,
    do_sample: bool = False,
    temperature: float | None = None,
    score: bool = False,
    max_new_tokens: int | None = None,
) -> list[list[Candidate]]:
    """Candidates for already encoded audio (see `encode_audio`, `resolve_languages`, `decoder_prefixes`).

    `max_new_tokens` caps generation below the generation config's limit (rows it cuts are marked
    unfinished, so a caller can decode them again without it).
    """
    ids = _generate(
        model,
        hidden,
        prefixes,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        do_sample=do_sample,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
    )
    texts = [text.strip() for text in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    eot = transcript_encoder(processor).eot
    finished = (ids == eot).any(dim=1).tolist()
    owners = [i // num_return_sequences for i in range(len(texts))]
    scores = score_texts(model, processor, hidden, owners, prefixes, texts) if score else [None] * len(texts)
    candidates = [Candidate(text, score, done) for text, score, done in zip(texts, scores, finished)]
    n = num_return_sequences
    return [candidates[i * n : (i + 1) * n] for i in range(hidden.shape[0])]


def decode_audio(
    model,
    processor,
    audios: Sequence[np.ndarray],
    *,
    language: Languages = None,
    task: str = "transcribe",
    num_beams: int | None = None,
    num_return_sequences: int = 1,
    do_sample: bool = False,
    temperature: float | None = None,
    batch_size: int = 8,
    score: bool = False,
) -> list[list[Candidate]]:
    """Per audio, `num_return_sequences` candidates (best first for beam search)."""
    languages = _per_row(language, len(audios))
    results: list[list[Candidate]] = []
    for start in range(0, len(audios), batch_size):
        hidden = encode_audio(model, processor, audios[start : start + batch_size])
        found = resolve_languages(model, processor, hidden, languages[start : start + batch_size])
        prefixes = decoder_prefixes(processor, found, task)
        results += decode_encoded(
            model,
            processor,
            hidden,
            prefixes,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            do_sample=do_sample,
            temperature=temperature,
            score=score,
        )
    return results


def transcribe_batch(model, processor, audios: Sequence[np.ndarray], *, return_scores: bool = False, **options):
    """Transcripts of 16 kHz audio arrays: `decode_audio` (same `options`) reduced to texts.

    Returns a list of texts, or with `num_return_sequences > 1` a list of candidate lists; with
    `return_scores`, a (texts, scores) tuple of the same shape (mean per-token log-probs).
    """
    candidates = decode_audio(model, processor, audios, score=return_scores, **options)
    if options.get("num_return_sequences", 1) == 1:
        texts, scores = [c[0].text for c in candidates], [c[0].logprob for c in candidates]
    else:
        texts = [[c.text for c in row] for row in candidates]
        scores = [[c.logprob for c in row] for row in candidates]
    return (texts, scores) if return_scores else texts


def sequence_logprobs(
    model,
    processor,
    audios: Sequence[np.ndarray],
    texts: Sequence[str],
    language: Languages = None,
    batch_size: int = 8,
) -> list[float]:
    """Mean per-token log-prob of each text given its audio (teacher forcing, prompt not scored)."""
    if len(audios) != len(texts):
        raise ValueError(f"{len(audios)} audios but {len(texts)} texts")
    languages = _per_row(language, len(audios))
    scores: list[float] = []
    for start in range(0, len(audios), batch_size):
        chunk = slice(start, start + batch_size)
        hidden = encode_audio(model, processor, audios[chunk])
        prefixes = decoder_prefixes(processor, resolve_languages(model, processor, hidden, languages[chunk]))
        owners = list(range(hidden.shape[0]))
        scores += score_texts(model, processor, hidden, owners, prefixes, list(texts[chunk]))
    return scores
