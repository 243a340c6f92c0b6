"""K-best rows as training items: the reference and the hypotheses encoded, with their word errors.

An item is the audio's features, `candidates` (EncodedTranscript, the reference first) and
`word_errors` (one whole number per candidate, the reference's 0), and the audio's `index`. The
reference is candidate 0 with 0 errors, as MWER's `reference_in_list` and the pairwise objectives
(the chosen) read it; a no-speech reference ("") is the encoder's no-speech target, as a pair's
chosen. Which hypotheses follow it:

- a hypothesis whose tokens are the reference's own, or an earlier hypothesis's, is left out: it
  would count twice (a K-best from make-pairs may hold the reference, written the same);
- `keep_correct` False (the pairwise objectives: each hypothesis is one rejected) also leaves out
  the hypotheses without word errors: a correct transcript, written otherwise, is no mistake.

A row left with its reference alone trains the reference's NLL only (no pair, no list to choose in).
"""

from __future__ import annotations

from rlhf_asr.data.dataset import EncodedDataset
from rlhf_asr.data.tokens import EncodedTranscript, TranscriptEncoder


def encode_kbest(
    example, encoder: TranscriptEncoder, language: str | None, keep_correct: bool = True
) -> tuple[tuple[EncodedTranscript, ...], tuple[int, ...]]:
    """(candidates, word errors) of one KBestExample: the reference first (0 errors), then the
    hypotheses kept, in the row's order."""
    if example.no_speech:
        reference = encoder.encode_no_speech(language)
    else:
        reference = encoder.encode(example.reference, language)
    candidates, errors = [reference], [0]
    for hypothesis in example.hypotheses:
        if hypothesis.word_errors == 0 and not keep_correct:
            continue
        encoded = encoder.encode(hypothesis.text, language)
        if all(encoded.ids != candidate.ids for candidate in candidates):
            candidates.append(encoded)
            errors.append(hypothesis.word_errors)
    return tuple(candidates), tuple(errors)


class KBestDataset(EncodedDataset):
    """Items: `input_features` [n_mels, 3000] float32, `candidates` [K] EncodedTranscript (the
    reference first), `word_errors` [K] whole numbers, `index`; K varies per row.

    Args: as PreferenceDataset's (examples are KBestExample), and `keep_correct`: keep the
    hypotheses without word errors (MWER), or leave them out (the pairwise objectives).
    """

    def __init__(self, *args, keep_correct: bool = True, **kwargs):
        self.keep_correct = keep_correct
        super().__init__(*args, **kwargs)

    def encode(self, example, language: str | None) -> tuple[tuple[EncodedTranscript, ...], tuple[int, ...]]:
        return encode_kbest(example, self.encoder, language, self.keep_correct)

    def sequences(self, row: tuple) -> tuple[EncodedTranscript, ...]:
        return row[0]

    def item(self, index: int) -> dict:
        candidates, errors = self.encoded[index]
        return {"candidates": list(candidates), "word_errors": list(errors)}
