"""The K-best row of one utterance (`make-pairs --nbest K`): the reference and up to K distinct
hypotheses of the model, each with its word errors (the row's format: rows.py).

Which hypotheses, taken in the decoder's order (beam search: best first; sampling: as drawn):

- Distinct: hypotheses with the same text under the evaluation's normaliser are one; the first is
  kept. Fewer than K distinct ones: the row holds those there are (training pads the absent slots).
- Speech (and padded clips): an output with no word after normalisation is left out, as the pair
  miner leaves it out. A correct hypothesis (0 word errors) stays: the model got it right, and
  MWER weighs it as the reference (the training set drops a candidate whose tokens are the
  reference's own, so that one is not counted twice). Without any hypothesis in error the clip
  gives no row ("skipped_correct"), without any usable one "skipped_empty".
- No speech (reference ""): every output with a word is a mistake, its words its word errors. An
  output without a word (silent, ".") is left out: with 0 word errors MWER would raise it as high
  as the reference (pair rows reject "." over silence: make-pairs without --nbest). A model silent
  on every hypothesis gives no row ("skipped_correct").
- A hypothesis over Whisper's length limit is cut to it, as a pair's rejected, and marked
  `truncated`; its word errors, and whether it is distinct, are those of what is written.
- A reference that cannot be trained on skips the clip ("skipped_reference"), as for pairs.
"""

from __future__ import annotations

from rlhf_asr.data.text_rules import NO_SPEECH
from rlhf_asr.evaluation.metrics import score_utterance
from rlhf_asr.inference.decode import Candidate
from rlhf_asr.pairs.choice import Miner
from rlhf_asr.pairs.rows import nbest_candidate, nbest_row


def kbest_row(
    miner: Miner, example, language: str, candidates: list[Candidate], kind: str, nbest: int
) -> tuple[dict | None, str]:
    """(row or None, status) of one utterance: mined, skipped_correct, skipped_empty or skipped_reference."""
    if kind != NO_SPEECH and not miner.reference_trains(example, language):
        return None, "skipped_reference"
    kept, seen = [], set()
    for candidate in candidates:
        text, truncated = miner.fit(example, candidate.text.strip(), language, what="hypothesis")
        score = score_utterance(example.text, text, language, english_spelling=miner.spelling)
        if score.hypothesis_norm and score.hypothesis_norm not in seen and len(kept) < nbest:
            seen.add(score.hypothesis_norm)
            kept.append(nbest_candidate(text, score.errors, candidate.logprob, truncated))
    if not any(candidate["word_errors"] for candidate in kept):
        return None, "skipped_correct" if kept or kind == NO_SPEECH else "skipped_empty"
    row = nbest_row(
        miner.audio_path(example.audio_path), example.duration, example.text, kept, language,
        kind=kind, nbest_by=miner.model_name, source=example.where,
    )  # fmt: skip
    return row, "mined"
