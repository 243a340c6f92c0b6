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

The demo mines from transcripts it already has (`mistake_rows`): one greedy transcript per clip,
a pair wherever it is a non-empty transcript with word errors (`is_mistake`).

Runs are resumable: every processed utterance is listed, by manifest line, in
`<output>.progress` (pairs also carry their `source`), both flushed after each batch, and a
rerun skips what is listed, so edit the ASR manifest only between fresh runs (--no_resume).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rlhf_asr.data.audio import AudioError
from rlhf_asr.data.nonspeech import check_nonspeech_options
from rlhf_asr.data.sources import DataSource, read_data
from rlhf_asr.data.tokens import transcript_encoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.evaluation.metrics import error_rates
from rlhf_asr.inference.decode import (
    check_language,
    decode_encoded,
    decoder_prefixes,
    encode_audio,
    resolve_languages,
)
from rlhf_asr.model.core import whisper_core
from rlhf_asr.pair_choice import CORRUPTION_NAME, KINDS, fit_text, row_kind  # noqa: F401 (re-exported)
from rlhf_asr.pair_choice import Miner as _Miner
from rlhf_asr.pair_sources import mining_items
from rlhf_asr.text_corruption import loop_text, loopable, reference_vocabulary

logger = logging.getLogger(__name__)

STRATEGIES = ("beam", "sample")
NEGATIVES = ("hardest", "worst", "random")


def mine_pairs(
    model,
    processor,
    asr_manifest: str | Path | DataSource,
    output_path: str | Path,
    *,
    num_candidates: int = 4,
    strategy: str = "beam",
    temperature: float = 0.7,
    negative: str = "hardest",
    corrupt_correct: bool = False,
    seed: int = 0,
    batch_size: int = 8,
    language: str | None = None,
    resume: bool = True,
    model_name: str | None = None,
    skip_invalid: bool = False,
    generate_nonspeech: int = 0,
    nonspeech_dir: str | Path | None = None,
    pad_silence: float = 0.0,
    loop_pairs: bool = False,
    candidates_from=None,
) -> dict:
    """Write preference rows for `asr_manifest` to `output_path` (JSON lines); returns counts.

    `generate_nonspeech` clips made here, the windows of the files under `nonspeech_dir`, and
    copies of the speech rows with `pad_silence` seconds of silence or noise around them are mined
    too (see `pair_sources`); the counts say how many pairs of each kind were written.
    `loop_pairs` adds, for every speech row, its reference against a repetition loop of it
    (`Miner.loop_pair`, kind "loop").

    `candidates_from(**decode_options)` returns the function that decodes a batch, (audios, wanted
    languages) -> (languages, candidates); None: `model` through `decode.py` (`hf_candidates`). The
    ct2 backend passes `partial(ct2_candidates, ct2_model)` (inference/ct2_decode.py), with `model`
    None and `model_name` given.
    """
    if strategy not in STRATEGIES:
        raise UserInputError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if negative not in NEGATIVES:
        raise UserInputError(f"negative must be one of {', '.join(NEGATIVES)}, not {negative!r}")
    if num_candidates < 1 or batch_size < 1:
        raise UserInputError("num_candidates and batch_size must be at least 1")
    check_nonspeech_options(generate_nonspeech, nonspeech_dir, pad_silence)
    language = check_language(processor, language)
    report = read_data(
        asr_manifest, "asr", skip_invalid=skip_invalid, known_languages=transcript_encoder(processor).known_languages()
    )
    output = Path(output_path).expanduser()
    progress_path = output.with_name(output.name + ".progress")
    done = _prepare_outputs(output, progress_path, resume)
    items, unreadable = mining_items(
        report.examples,
        output,
        generate=generate_nonspeech,
        nonspeech_dir=nonspeech_dir,
        pad_silence=pad_silence,
        seed=seed,
    )
    todo = [item for item in items if item.example.source not in done]
    torch.manual_seed(seed)
    miner = _Miner(
        processor,
        random.Random(seed),
        negative,
        corrupt_correct,
        model_name or getattr(whisper_core(model).config, "_name_or_path", "model"),
        output.parent.absolute(),
        reference_vocabulary([example.text for example in report.examples]),
        encoder=transcript_encoder(processor),
    )
    decode = dict(
        num_beams=num_candidates if strategy == "beam" else 1,
        num_return_sequences=num_candidates,
        do_sample=strategy == "sample",
        temperature=temperature if strategy == "sample" else None,
        score=True,
    )
    provide = (candidates_from or partial(hf_candidates, model, processor))(**decode)
    counts: Counter = Counter()
    # Row notes go through logging; the redirect keeps them from breaking the progress bar.
    with (
        open(output, "a", encoding="utf-8") as pair_file,
        open(progress_path, "a", encoding="utf-8") as progress,
        logging_redirect_tqdm(loggers=[logging.getLogger("rlhf_asr")]),
    ):
        for start in tqdm(range(0, len(todo), batch_size), desc="make-pairs", unit="batch"):
            batch, kinds, audios = [], [], []
            for item in todo[start : start + batch_size]:
                try:
                    audio, example = item.load()
                except AudioError as error:
                    logger.warning(f"{item.example.source}: {error}")
                    counts["errors"] += 1
                    continue
                audios.append(audio)
                batch.append(example)
                kinds.append(item.kind)
            if not batch:
                continue
            languages, candidates = provide(audios, [language or e.language for e in batch])
            statuses = []
            for example, kind, lang, found in zip(batch, kinds, languages, candidates):
                row, status = miner.pair(example, lang, found, kind)
                counts[status] += 1
                statuses.append(json.dumps({"source": example.source, "status": status}) + "\n")
                rows = [row] if row is not None else []
                if loop_pairs and kind == "speech" and status != "skipped_reference":
                    rows += [loop for loop in [miner.loop_pair(example, lang)] if loop is not None]
                for row in rows:
                    pair_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                    counts["truncated"] += bool(row.get("rejected_truncated"))
                    counts["loops"] += bool(row.get("rejected_loop")) and row["kind"] != "loop"  # mined loops
                    counts[row["kind"]] += 1
            pair_file.flush()  # pairs first: a row marked done always has its pair on disk
            progress.writelines(statuses)
            progress.flush()
    written = counts["mined"] + counts["corrupted"] + counts["loop"]
    if counts["truncated"]:
        logger.warning(f"make-pairs: {counts['truncated']} rejected transcript(s) cut to Whisper's length limit")
    if counts["skipped_reference"]:
        skipped = counts["skipped_reference"]
        logger.warning(f"make-pairs: {skipped} utterance(s) skipped: reference cannot be trained on")
    return {
        "written": written,
        "mined": counts["mined"],
        "corrupted": counts["corrupted"],
        "skipped_correct": counts["skipped_correct"],
        "skipped_empty": counts["skipped_empty"],
        "skipped_reference": counts["skipped_reference"],
        "truncated": counts["truncated"],
        "errors": counts["errors"],
        **{kind: counts[kind] for kind in KINDS},
        "loops": counts["loops"],
        "nonspeech_unreadable": unreadable,
        "already_done": len(items) - len(todo),
        "rows": len(report.examples),
        "output": str(output),
    }


def hf_candidates(model, processor, **decode):
    """The batch decoder `mine_pairs` uses by default: encode once, resolve languages, decode with `model`."""

    def provide(audios, wanted):
        hidden = encode_audio(model, processor, audios)
        languages = resolve_languages(model, processor, hidden, wanted)
        return languages, decode_encoded(model, processor, hidden, decoder_prefixes(processor, languages), **decode)

    return provide


def is_mistake(reference: str, hypothesis: str, language: str = "en") -> bool:
    """A non-empty transcript with word errors after normalisation: what becomes a preference pair."""
    return bool(hypothesis.strip()) and error_rates([reference], [hypothesis], language)["word_errors"] > 0


def mistake_rows(
    audio_paths: list[str], durations: list[float], references: list[str], hypotheses: list[str]
) -> list[tuple[int, dict]]:
    """(index, preference row) for every English clip whose transcript `is_mistake`: chosen = reference,
    rejected = the transcript."""
    return [
        (index, _english_row(path, duration, reference, hypothesis))
        for index, (path, duration, reference, hypothesis) in enumerate(
            zip(audio_paths, durations, references, hypotheses)
        )
        if is_mistake(reference, hypothesis)
    ]


def loop_rows(
    audio_paths: list[str], durations: list[float], references: list[str], seed: int = 0
) -> list[tuple[int, dict]]:
    """(index, preference row) for every English clip: chosen = reference, rejected = a repetition loop
    of it (`loop_text`, seeded), as `make-pairs --loop_pairs` writes them (`Miner.loop_pair`)."""
    rng = random.Random(seed)
    return [
        (index, {**_english_row(path, duration, reference, loop_text(reference, "en", rng)), "kind": "loop"})
        for index, (path, duration, reference) in enumerate(zip(audio_paths, durations, references))
        if loopable(reference)
    ]


def _english_row(path: str, duration: float, chosen: str, rejected: str) -> dict:
    row = {"audio": {"path": path}, "duration": round(duration, 3), "chosen": chosen, "rejected": rejected}
    return {**row, "language": "English"}


def _prepare_outputs(output: Path, progress_path: Path, resume: bool) -> set[str]:
    """Sources already processed; starts both files afresh when not resuming."""
    if not resume:
        for path in (output, progress_path):
            path.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    for path in (output, progress_path):
        done |= _sources(path)
    return done


def _sources(path: Path) -> set[str]:
    """`source` of each complete row; a torn last line (killed mid-write) is cut off."""
    if not path.exists():
        return set()
    sources, good_bytes = set(), 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                row = json.loads(raw)
            except ValueError:
                break
            if not raw.endswith(b"\n"):
                break
            if isinstance(row, dict) and row.get("source"):
                sources.add(row["source"])
            good_bytes += len(raw)
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return sources
