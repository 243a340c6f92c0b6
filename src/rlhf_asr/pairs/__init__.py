"""Preference pairs from a model's own mistakes: `rlhf-asr make-pairs`, and the demo's pairs.

For each clip of an ASR manifest the model decodes N candidates; the reference becomes `chosen`
and a wrong candidate `rejected` (by default the most probable wrong one). Clips with nothing said
reject any output, padded clips reject words written on the padding, and loop pairs reject the
reference running into a repetition loop. With `nbest` K, each clip gives one K-best row instead:
the reference and up to K distinct hypotheses, each with its word errors (MWER's data).

Modules, in the order a run uses them:
    options.py      MiningOptions: how to decode, which candidate to reject, what else to mine (torch-free)
    items.py        what is decoded: manifest rows, non-speech clips, speech padded with silence or noise
    mine.py         mine_pairs: decode in batches, write rows; hf_candidates, the default batch decoder
    choice.py       Miner: the rejected transcript of one utterance and its row (speech, no-speech, padded, loop)
    nbest.py        kbest_row: with --nbest K, one utterance's K-best row (reference, hypotheses, word errors)
    corruption.py   a reference's one controlled edit (corrupt_correct) or repetition loop (loop pairs)
    rows.py         preference_row, nbest_row: the one builder of a row (pair or K-best), for every writer
    transcripts.py  pairs from transcripts already decoded (the studies'): mistake_rows, loop_rows, no_speech_rows
    progress.py     resumable runs: the rows an earlier run processed
    summary.py      MiningCounts: what a run did, and the summary mine_pairs returns

The names below load on first use, so that importing `rlhf_asr.pairs.options` (make-pairs' --help)
does not import torch through this package.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it
_NAMES = {
    "MiningOptions": "options",
    "STRATEGIES": "options",
    "NEGATIVES": "options",
    "MiningItem": "items",
    "mining_items": "items",
    "mine_pairs": "mine",
    "hf_candidates": "mine",
    "Miner": "choice",
    "fit_text": "choice",
    "CORRUPTION_NAME": "choice",
    "LOOP_NAME": "choice",
    "corrupt_text": "corruption",
    "loop_text": "corruption",
    "loopable": "corruption",
    "reference_vocabulary": "corruption",
    "KINDS": "rows",
    "preference_row": "rows",
    "nbest_row": "rows",
    "nbest_candidate": "rows",
    "kbest_row": "nbest",
    "is_mistake": "transcripts",
    "mistake_rows": "transcripts",
    "loop_rows": "transcripts",
    "no_speech_rows": "transcripts",
    "MiningCounts": "summary",
}
__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
