"""Mine preference pairs from an ASR manifest with a model's own mistakes (`rlhf-asr make-pairs`).

Preference data is rarely at hand, but transcribed audio is. For each utterance the model
decodes N candidates; the reference becomes `chosen` and a wrong candidate `rejected`. By
default the rejected one is the *hardest* negative: the wrong candidate the model itself finds
most probable (highest mean per-token log-prob), i.e. the mistake ORPO most needs to unlearn.
"worst" takes the candidate with the highest error rate, "random" any wrong one.

Utterances the model already gets right give no pair and are skipped, unless
`corrupt_correct`, which makes a rejected transcript by a seeded substitution, deletion,
insertion or repetition of words (characters for zh/ja/...), drawing new words from the
manifest's own references.

Every row written trains: both transcripts are checked with the training tokenisation against the
one length limit (`max_text_tokens`). A rejected transcript over it (a decoding that ran to the
limit, usually a repetition loop, re-tokenised a little longer) is cut to the limit and counted,
not dropped: such loops are Whisper's most typical failure and the mistake ORPO most needs to
unlearn, and the cut only shortens text the decoder had already cut off. A reference that cannot
train (too long, control tokens) skips its utterance, with a line naming the row.

`nbest` K > 0 writes, instead of a pair, one K-best row per utterance: the reference and up to K
distinct hypotheses with their word errors (nbest.py says which; rows.py the format), the data of
`train --loss mwer`, or of several rejected per clip for the pairwise objectives.

Runs are resumable (progress.py): a rerun skips the manifest rows an earlier one processed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rlhf_asr.data.audio import AudioError
from rlhf_asr.data.examples import AsrExample
from rlhf_asr.data.options import DataSource
from rlhf_asr.data.row_checks import RowChecks
from rlhf_asr.data.sources import read_data
from rlhf_asr.data.text_rules import SPEECH
from rlhf_asr.data.tokens import transcript_encoder
from rlhf_asr.inference.decode import (
    check_language,
    decode_encoded,
    decoder_prefixes,
    encode_audio,
    resolve_languages,
)
from rlhf_asr.model.core import whisper_core
from rlhf_asr.pairs.choice import Miner
from rlhf_asr.pairs.corruption import reference_vocabulary
from rlhf_asr.pairs.items import MiningItem, mining_items
from rlhf_asr.pairs.nbest import kbest_row
from rlhf_asr.pairs.options import MiningOptions
from rlhf_asr.pairs.progress import prepare_outputs, progress_path, status_line
from rlhf_asr.pairs.summary import MiningCounts

logger = logging.getLogger(__name__)


def mine_pairs(
    model,
    processor,
    asr_manifest: str | Path | DataSource,
    output_path: str | Path,
    options: MiningOptions | None = None,
    *,
    resume: bool = True,
    skip_invalid: bool = False,
    model_name: str | None = None,
    candidates_from=None,
    **changes,
) -> dict:
    """Write preference rows for `asr_manifest` to `output_path` (JSON lines); returns counts.

    `options` says how to decode and what to mine (None: the defaults; `changes`: fields replaced in
    it, as `mine_pairs(..., num_candidates=2)`). Its `generate_nonspeech` clips, the windows of the files
    under `nonspeech_dir`, and copies of the speech rows with `pad_silence` seconds of silence or
    noise around them are mined too (see `items.py`); the counts say how many pairs of each kind
    were written. `loop_pairs` adds, for every speech row, its reference against a repetition loop
    of it (`Miner.loop_pair`, kind "loop"). `nbest` K > 0: one K-best row per utterance instead of a
    pair (`kbest_row`); the counts then also say how many hypotheses the rows hold.

    `resume` False starts the output afresh; `skip_invalid` skips (and counts) invalid manifest rows.
    `candidates_from(**decode_options)` returns the function that decodes a batch, (audios, wanted
    languages) -> (languages, candidates); None: `model` through `decode.py` (`hf_candidates`). The
    ct2 backend passes `partial(ct2_candidates, ct2_model)` (inference/ct2_decode.py), with `model`
    None and `model_name` given.
    """
    options = MiningOptions(**changes) if options is None else dataclasses.replace(options, **changes)
    language = check_language(processor, options.language)
    encoder = transcript_encoder(processor)
    report = read_data(
        asr_manifest, "asr", RowChecks(skip_invalid=skip_invalid, known_languages=encoder.known_languages())
    )
    output = Path(output_path).expanduser()
    done = prepare_outputs(output, resume)
    items, unreadable = mining_items(
        report.examples,
        output,
        generate=options.generate_nonspeech,
        nonspeech_dir=options.nonspeech_dir,
        pad_silence=options.pad_silence,
        seed=options.seed,
    )
    todo = [item for item in items if item.example.where not in done]
    torch.manual_seed(options.seed)
    name = model_name or getattr(whisper_core(model).config, "_name_or_path", "model")
    vocabulary = reference_vocabulary([example.text for example in report.examples])
    rng = random.Random(options.seed)
    miner = Miner(
        processor, rng, options.negative, options.corrupt_correct, name, output.parent.absolute(), vocabulary, encoder
    )
    provide = (candidates_from or partial(hf_candidates, model, processor))(**options.decoding())
    counts = _mine(todo, provide, miner, language, options, output)
    counts.warn()
    return counts.summary(
        unreadable=unreadable, already_done=len(items) - len(todo), rows=len(report.examples), output=output
    )


def hf_candidates(model, processor, **decode):
    """The batch decoder `mine_pairs` uses by default: encode once, resolve languages, decode with `model`."""

    def provide(audios, wanted):
        hidden = encode_audio(model, processor, audios)
        languages = resolve_languages(model, processor, hidden, wanted)
        return languages, decode_encoded(model, processor, hidden, decoder_prefixes(processor, languages), **decode)

    return provide


def _mine(todo: list[MiningItem], provide, miner: Miner, language, options: MiningOptions, output: Path):
    """Decodes `todo` in batches, writing each batch's rows and then its statuses; the run's MiningCounts."""
    counts = MiningCounts()
    # Row notes go through logging; the redirect keeps them from breaking the progress bar.
    with (
        open(output, "a", encoding="utf-8") as pair_file,
        open(progress_path(output), "a", encoding="utf-8") as progress,
        logging_redirect_tqdm(loggers=[logging.getLogger("rlhf_asr")]),
    ):
        for start in tqdm(range(0, len(todo), options.batch_size), desc="make-pairs", unit="batch"):
            loaded = _load(todo[start : start + options.batch_size], counts)
            if not loaded:
                continue
            audios, wanted = [audio for _, _, audio in loaded], [language or e.language for e, _, _ in loaded]
            languages, candidates = provide(audios, wanted)
            statuses = []
            for (example, kind, _), lang, found in zip(loaded, languages, candidates):
                rows, status = _rows(miner, example, kind, lang, found, options)
                counts.status(status)
                statuses.append(status_line(example.where, status))
                for row in rows:
                    pair_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                    counts.row(row)
            pair_file.flush()  # pairs first: a row marked done always has its pair on disk
            progress.writelines(statuses)
            progress.flush()
    return counts


def _load(items: list[MiningItem], counts: MiningCounts) -> list[tuple[AsrExample, str, np.ndarray]]:
    """(example as written, kind, audio [frames]) of each readable item; an unreadable one is logged and counted."""
    loaded = []
    for item in items:
        try:
            audio, example = item.load()
        except AudioError as error:
            logger.warning(f"{item.example.where}: {error}")
            counts.error()
            continue
        loaded.append((example, item.kind, audio))
    return loaded


def _rows(miner: Miner, example: AsrExample, kind: str, language, candidates, options: MiningOptions):
    """(rows, status) of one utterance: its K-best row if any (--nbest), else its pair if any, then
    with `loop_pairs` a speech clip's loop pair."""
    if options.nbest:
        row, status = kbest_row(miner, example, language, candidates, kind, options.nbest)
    else:
        row, status = miner.pair(example, language, candidates, kind)
    rows = [row] if row is not None else []
    if options.loop_pairs and kind == SPEECH and status != "skipped_reference":
        rows += [loop for loop in [miner.loop_pair(example, language)] if loop is not None]
    return rows, status
