"""The model's N-best for every clip, computed ahead and stored, so the page never waits on the model.

The decoding is make-pairs' (`rlhf_asr.pairs.mine_pairs`): encode once, resolve the language, beam
search with `num_beams = num_return_sequences = N`, each candidate scored by its mean per-token
log-prob. Duplicate texts are kept once; the row's own texts (reference, chosen, rejected) follow
the model's, so a reviewer can pick them too. Runs resume: only clips without candidates are decoded,
one transaction per batch.
"""

from __future__ import annotations

import json
import logging

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rlhf_asr.data.audio import load_audio
from rlhf_asr.inference.decode import Candidate, decode_encoded, decoder_prefixes, encode_audio, resolve_languages
from rlhf_asr.review.store import MODEL, ReviewStore

logger = logging.getLogger(__name__)


def merge_candidates(model_candidates: list[Candidate], texts: list[list[str]]) -> list[tuple[str, str, float | None]]:
    """(origin, text, logprob): the model's distinct non-empty candidates best first, then the row's texts."""
    merged, seen = [], set()
    for origin, text, logprob in [(MODEL, c.text, c.logprob) for c in model_candidates] + [
        (origin, text, None) for origin, text in texts
    ]:
        key = " ".join(text.split())
        if key and key not in seen:
            seen.add(key)
            merged.append((origin, key, logprob))
    return merged


def precompute_candidates(
    store: ReviewStore, model, processor, num_candidates: int = 4, batch_size: int = 8, language: str | None = None
) -> int:
    """Decodes every clip that has no candidates yet; returns how many were decoded."""
    todo = store.clips_without_candidates()
    if not todo:
        return 0
    with logging_redirect_tqdm(loggers=[logging.getLogger("rlhf_asr")]):
        for start in tqdm(range(0, len(todo), batch_size), desc="review: candidates", unit="batch"):
            batch = todo[start : start + batch_size]
            audios = [load_audio(row["audio_path"]) for row in batch]
            hidden = encode_audio(model, processor, audios)  # [B, frames, d]
            languages = resolve_languages(model, processor, hidden, [language or row["language"] for row in batch])
            found = decode_encoded(
                model,
                processor,
                hidden,
                decoder_prefixes(processor, languages),
                num_beams=num_candidates,
                num_return_sequences=num_candidates,
                score=True,
            )
            store.add_candidates(
                [(row["id"], merge_candidates(cands, json.loads(row["texts"]))) for row, cands in zip(batch, found)]
            )
    logger.info("review: candidates of %d clip(s) decoded and stored", len(todo))
    return len(todo)
