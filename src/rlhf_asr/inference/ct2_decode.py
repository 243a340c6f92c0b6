"""Decoding with CTranslate2's Whisper (what faster-whisper runs): the deployment engine as a backend.

The same contract as `decode.py`, so results can be compared clip for clip: the audio goes
through the same feature extractor, is encoded once (`encode_ct2`) and that output serves
language detection and decoding; prompts come from `decoder_prefixes`; beam width and length
limit follow the model's generation config (`export_ct2` saves it beside `model.bin`) with
`decode.py`'s length rule; suppressed tokens are the generation config's. Candidates come back
as `Candidate`s, best first.

Two CTranslate2 specifics are handled here, both pinned by tests/inference/test_ct2_decode.py:
- `generate(max_length=L)` generates at most L // 2 tokens after the prompt (measured with
  CTranslate2 4.8), so the limit passed is twice the number of new tokens wanted;
- a candidate's `logprob` is CTranslate2's own score, the mean log-prob of the generated tokens
  (`return_scores`, length penalty 1), not `decode.py`'s teacher-forced re-scoring of the text:
  CTranslate2 has no teacher-forced scoring for Whisper. Both rank a clip's candidates the same
  way when the text re-tokenises to the generated tokens, the usual case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlhf_asr.data.audio import WHISPER_SAMPLING_RATE
from rlhf_asr.data.tokens import MAX_TARGET_TOKENS, max_text_tokens, transcript_encoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.inference.decode import Candidate, check_language, decoder_prefixes, default_num_beams

# (audios, wanted language per audio or None) -> (language per audio, candidates per audio)
CandidatesProvider = Callable[[Sequence[np.ndarray], list], tuple[list[str], list[list[Candidate]]]]


@dataclass(frozen=True)
class CT2Whisper:
    """A loaded CTranslate2 Whisper with the processor and generation config decoding follows."""

    model: object  # ctranslate2.models.Whisper
    processor: object  # transformers WhisperProcessor
    generation_config: object  # transformers GenerationConfig
    path: str
    compute_type: str


def load_ct2_whisper(
    folder: str | Path, *, device: str = "cpu", compute_type: str = "default", threads: int = 0, processor=None
) -> CT2Whisper:
    """A CTranslate2 Whisper folder (as `export_ct2` writes it) ready to decode.

    `device`: cpu, cuda, cuda:N or auto; `threads`: CPU threads of one decoding (0: CTranslate2's
    default); `processor`: None reads the one saved in the folder. A folder without
    generation_config.json decodes greedily with the default length limit.
    """
    try:
        import ctranslate2
    except ImportError:
        raise UserInputError("the ct2 backend needs the ctranslate2 package: pip install ctranslate2") from None
    from transformers import GenerationConfig

    from rlhf_asr.model.loading import load_processor

    folder = Path(folder).expanduser()
    if not (folder / "model.bin").is_file():
        raise UserInputError(f"{folder}: not a CTranslate2 model folder (no model.bin)")
    try:
        kind, _, index = device.partition(":")  # torch's "cuda:1" is CTranslate2's ("cuda", 1)
        model = ctranslate2.models.Whisper(
            str(folder), device=kind, device_index=int(index or 0), compute_type=compute_type, intra_threads=threads
        )
    except (RuntimeError, ValueError) as error:
        raise UserInputError(f"{folder}: CTranslate2 cannot load it ({error})") from None
    if (folder / "generation_config.json").is_file():
        generation = GenerationConfig.from_pretrained(folder)
    else:
        generation = GenerationConfig()
    processor = processor if processor is not None else load_processor(folder)
    return CT2Whisper(model, processor, generation, str(folder), model.compute_type)


def encode_ct2(ct2: CT2Whisper, audios: Sequence[np.ndarray]):
    """Encoder output [B, frames, d] (a CTranslate2 StorageView) for raw 16 kHz audio."""
    import ctranslate2

    features = ct2.processor.feature_extractor(
        list(audios), sampling_rate=WHISPER_SAMPLING_RATE, return_tensors="np"
    ).input_features  # [B, mels, 3000]
    return ct2.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32)))


def resolve_ct2_languages(ct2: CT2Whisper, encoded, wanted: Sequence[str | None]) -> list[str]:
    """Language of each audio: given, detected by the CT2 model (multilingual, none given) or "en"."""
    languages = [check_language(ct2.processor, lang) for lang in wanted]
    if not transcript_encoder(ct2.processor).multilingual:
        return ["en"] * len(languages)
    if any(lang is None for lang in languages):
        detected = [ranked[0][0].strip("<|>") for ranked in ct2.model.detect_language(encoded)]
        languages = [lang or found for lang, found in zip(languages, detected)]
    return languages


def new_token_limit(generation_config, prompt_len: int, max_target_positions: int = MAX_TARGET_TOKENS) -> int:
    """Tokens generated at most after a prompt: `decode._length_limit`'s rule (Whisper's own)."""
    limit = max_text_tokens(prompt_len, max_target_positions)
    if generation_config.max_new_tokens is not None:
        return min(generation_config.max_new_tokens, limit)
    return min(generation_config.max_length or MAX_TARGET_TOKENS, limit)


def decode_ct2(
    ct2: CT2Whisper,
    encoded,
    prefixes: list[list[int]],
    *,
    num_beams: int | None = None,
    num_return_sequences: int = 1,
    do_sample: bool = False,
    temperature: float | None = None,
) -> list[list[Candidate]]:
    """`num_return_sequences` candidates per encoded audio, with CT2's mean log-probs (see module doc)."""
    generation = ct2.generation_config
    beams = num_beams or default_num_beams(generation)
    new_tokens = new_token_limit(generation, max(len(prefix) for prefix in prefixes))
    options = dict(num_hypotheses=num_return_sequences, max_length=2 * new_tokens, return_scores=True)
    if generation.suppress_tokens is not None:
        options["suppress_tokens"] = list(generation.suppress_tokens)
    if do_sample:  # HF samples from the top_k of the generation config (50 by default)
        options.update(beam_size=1, sampling_topk=generation.top_k or 0)
        options["sampling_temperature"] = 1.0 if temperature is None else temperature
    else:
        options["beam_size"] = max(beams, num_return_sequences)
    results = ct2.model.generate(encoded, prefixes, **options)
    tokenizer = ct2.processor.tokenizer
    rows = []
    for result in results:
        texts = tokenizer.batch_decode(result.sequences_ids, skip_special_tokens=True)
        rows.append(
            [
                Candidate(text.strip(), float(score), len(ids) < new_tokens)
                for text, score, ids in zip(texts, result.scores, result.sequences_ids)
            ]
        )
    return rows


def ct2_candidates(ct2: CT2Whisper, **decode) -> CandidatesProvider:
    """The candidates provider `pairs.mine_pairs` takes: encode once, resolve languages, decode."""
    decode.pop("score", None)  # CT2 always scores

    def provide(audios, wanted):
        encoded = encode_ct2(ct2, audios)
        languages = resolve_ct2_languages(ct2, encoded, wanted)
        return languages, decode_ct2(ct2, encoded, decoder_prefixes(ct2.processor, languages), **decode)

    return provide
