"""The Python API: each command of `rlhf-asr` as one function, the CLI a thin layer over them.

    from rlhf_asr import evaluate, make_pairs, train, transcribe
    make_pairs("tiny.en", "train.asr.jsonl", "pairs.jsonl", generate_nonspeech=40)
    run = train("pairs.jsonl", model="tiny.en", output_dir="run", num_train_epochs=3)
    print(evaluate(run["output_dir"], "test.asr.jsonl")["wer"])
    print(transcribe(run["output_dir"], ["meeting.wav"])[0])

`model` arguments take what `--model` takes (a bundled name such as `tiny.en`, a hub id in the
local cache, a model folder or an adapter folder) or a `LoadedModel` from `load_model`, so a
notebook loads once and calls many times. Options are the commands' options, by the same names
(`rlhf-asr CMD --help` lists them with their defaults). Bad input raises `UserInputError`, whose
message is the one line the CLI prints.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple

import numpy as np

from rlhf_asr.data.options import Columns, DataSource, as_source
from rlhf_asr.errors import UserInputError
from rlhf_asr.inference.longform import LongFormOptions
from rlhf_asr.model.bundled import DEFAULT_MODEL
from rlhf_asr.pairs.options import DEFAULTS as MINING
from rlhf_asr.pairs.options import OPTION_NAMES, MiningOptions, Negative, Strategy

logger = logging.getLogger(__name__)

ModelLike = Any  # str | Path | LoadedModel (kept loose: torch is imported lazily)
# Train's fields under their command-line names (commands/train.py NAMES; api.py sits below commands).
TRAIN_OPTION_NAMES = {"base_model": "--model", "train_data": "--data"}
__all__ = ["Columns", "DataSource", "LoadedModel", "evaluate", "load_model", "make_pairs", "train", "transcribe"]


class LoadedModel(NamedTuple):
    """A model ready to decode (eval mode, on its device) and its processor."""

    model: Any  # WhisperForConditionalGeneration, or a PeftModel around one
    processor: Any  # WhisperProcessor
    name: str  # what it was loaded from, as the user named it


def load_model(model: str | Path, *, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Loads a base, merged or adapter checkpoint for decoding.

    Args:
        model: bundled name (`tiny.en`, `base`), hub id found in the local cache, or folder.
        device: `cpu`, `cuda`, `cuda:1`...; None: cuda when available, else cpu.
        dtype: `float32`, `float16` or `bfloat16`; None: as saved.
    """
    if isinstance(model, LoadedModel):
        return model
    from rlhf_asr.model.loading import default_device, load_for_inference
    from rlhf_asr.trainer.validate import check_model_folder

    check_model_folder(str(model), "model")  # a truncated weights file: one line, before loading
    loaded, processor = load_for_inference(str(model), device=device or default_device(), dtype=dtype)
    return LoadedModel(loaded, processor, str(model))


def _loaded(model: ModelLike, device: str | None, dtype: str | None) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model, device=device, dtype=dtype)


def transcribe(
    model: ModelLike,
    audio: str | Path | np.ndarray | Sequence[str | Path | np.ndarray],
    *,
    language: str | None = None,
    num_beams: int | None = None,
    batch_size: int = 8,
    timestamps: bool = False,
    long_form: LongFormOptions | None = None,
    seed: int = 0,
    device: str | None = None,
    dtype: str | None = None,
) -> list:
    """Transcripts of audio files (any format soundfile reads) or 16 kHz mono float arrays, in order.

    Audio up to 30 s is decoded in one window with the model's generation config; longer audio
    (and all audio with `timestamps`) with Whisper's sequential long-form decoding
    (`inference/longform.py`: temperature fallback, no-speech and log-prob thresholds), with a
    progress bar over the seconds decoded on stderr when it is a terminal (not when the `rlhf_asr`
    logger is above INFO, as with `--quiet`).

    Args:
        language: e.g. `English` or `en`; None: each file's detected language (multilingual models).
        num_beams: None: the pipeline's (the generation config's, else 5; long-form: the config's); 1: greedy.
        batch_size: files decoded at once.
        timestamps: return `LongFormResult`s (text and timed segments) instead of strings.
        long_form: the long-form options; None: openai/whisper's defaults.
        seed: seeds the sampling of the temperature fallback, so a transcript repeats.
    Returns one `str` per input, or one `LongFormResult` per input with `timestamps`.
    """
    _check(transcribe, locals(), positive=("num_beams", "batch_size"))
    items = _audio_items(audio)

    import torch

    from rlhf_asr.data.audio import load_audio
    from rlhf_asr.inference.decode import over_window, transcribe_batch
    from rlhf_asr.inference.longform import transcribe_long

    audios = [item if isinstance(item, np.ndarray) else load_audio(item) for item in items]  # before the model
    loaded = _loaded(model, device, dtype)
    torch.manual_seed(seed)
    decode = dict(language=language, num_beams=num_beams, batch_size=batch_size)
    if timestamps:
        return transcribe_long(loaded.model, loaded.processor, audios, options=long_form, progress=True, **decode)
    long_rows = [i for i, seconds in enumerate(over_window(audios)) if seconds is not None]
    short_rows = [i for i in range(len(audios)) if i not in set(long_rows)]
    texts: dict[int, str] = {}
    if short_rows:
        found = transcribe_batch(loaded.model, loaded.processor, [audios[i] for i in short_rows], **decode)
        texts.update(zip(short_rows, found))
    if long_rows:
        logger.info("%d file(s) over 30 s: long-form decoding", len(long_rows))
        found = transcribe_long(
            loaded.model, loaded.processor, [audios[i] for i in long_rows], options=long_form, progress=True, **decode
        )
        texts.update(zip(long_rows, (result.text for result in found)))
    return [texts[i] for i in range(len(audios))]


def evaluate(
    model: ModelLike,
    data: str | Path | DataSource,
    *,
    output: str | Path | None = None,
    language: str | None = None,
    num_beams: int | None = None,
    batch_size: int = 8,
    max_rows: int | None = None,
    skip_invalid_rows: bool = False,
    long_form: LongFormOptions | None = None,
    backend: Literal["hf", "ct2", "faster-whisper"] = "hf",
    ct2_model: str | Path | None = None,
    ct2_quantization: str = "int8",
    device: str | None = None,
    dtype: str | None = None,
) -> dict:
    """WER/CER (speech rows), hallucination, insertion and repetition rates, preference accuracy.

    Args:
        data: an ASR or preference manifest (JSONL), a dataset folder/file/hub id, or a
            `DataSource` naming a dataset's split and columns.
        output: metrics.json path; utterances.csv is written beside it. None: nothing written.
        language: overrides the rows' own languages; None: each row's (else detected).
        num_beams: None: the pipeline's (the generation config's, else 5; long-form: the config's); 1: greedy.
        max_rows: score only the first N rows.
        skip_invalid_rows: skip (and count) bad rows instead of stopping at the first.
        long_form: how rows over 30 s are decoded (`transcribe`'s options); None: openai's defaults.
        backend: `hf` (transformers), or `ct2`: decode with the model's CTranslate2 conversion as
            well and report both WERs (`wer` = CT2's, `hf_wer`, `wer_difference` = CT2 - HF), or
            `faster-whisper`: the export through faster-whisper with its own defaults (beam 5...).
        ct2_model: an `export-ct2` folder of `model`; None: exported now (`ct2_quantization`).
    Returns the metrics that metrics.json holds.
    """
    from rlhf_asr.data.sources import data_kind
    from rlhf_asr.evaluation.evaluate import check_output, evaluate_manifest

    _check(evaluate, locals(), positive=("num_beams", "batch_size", "max_rows"))
    if ct2_model is not None and backend == "hf":
        raise UserInputError("--ct2_model is for --backend ct2 or faster-whisper")
    target = check_output(str(output)) if output is not None else None  # before hours of decoding
    source = as_source(data, "test", max_rows)
    data_kind(source)  # a dataset's split, columns or hub cache: checked before the model loads
    if ct2_model is not None and not (Path(ct2_model).expanduser() / "model.bin").is_file():
        raise UserInputError(f"--ct2_model {ct2_model}: not a CTranslate2 model folder (no model.bin)")
    loaded = _loaded(model, device, dtype)
    if backend == "hf":
        decode = partial(evaluate_manifest, long_form=long_form)
    else:
        decode = _ct2_backend(backend, loaded, ct2_model, ct2_quantization, device)
    return decode(
        loaded.model,
        loaded.processor,
        source,
        language=language,
        num_beams=num_beams,
        batch_size=batch_size,
        output_dir=target.parent if target else None,
        metrics_name=target.name if target else "metrics.json",
        max_rows=max_rows,
        model_name=loaded.name,
        skip_invalid=skip_invalid_rows,
    )


def make_pairs(
    model: ModelLike,
    data: str | Path | DataSource,
    output: str | Path,
    *,
    num_candidates: int = MINING.num_candidates,
    strategy: Strategy = MINING.strategy,
    temperature: float = MINING.temperature,
    negative: Negative = MINING.negative,
    corrupt_correct: bool = MINING.corrupt_correct,
    generate_nonspeech: int = MINING.generate_nonspeech,
    nonspeech_dir: str | Path | None = MINING.nonspeech_dir,
    pad_silence: float = MINING.pad_silence,
    loop_pairs: bool = MINING.loop_pairs,
    nbest: int = MINING.nbest,
    language: str | None = MINING.language,
    seed: int = MINING.seed,
    batch_size: int = MINING.batch_size,
    resume: bool = True,
    skip_invalid_rows: bool = False,
    backend: Literal["hf", "ct2"] = "hf",
    ct2_quantization: str = "int8",
    device: str | None = None,
    dtype: str | None = None,
) -> dict:
    """Mines preference pairs from an ASR manifest (or dataset) with the model's own mistakes.

    Args:
        output: the preference manifest to write (JSON lines); resumed when present and `resume`.
        num_candidates: candidates decoded per clip (n-best beam search, or samples).
        strategy: `beam` or `sample` (at `temperature`).
        negative: the rejected transcript: `hardest` (most probable wrong), `worst` (highest WER), `random`.
        corrupt_correct: where the model is right, reject a corrupted reference instead of skipping.
        generate_nonspeech: non-speech clips made here (silence, noises, tones, hum, music-like),
            whose every non-empty transcript is rejected in favour of "".
        nonspeech_dir: the user's own non-speech files, cut into windows of at most 30 s.
        pad_silence: seconds of silence or noise added around copies of the speech clips.
        loop_pairs: also pair every speech clip's reference against a repetition loop of it.
        nbest: K > 0 writes one K-best row per clip instead of a pair (the reference and up to K
            distinct hypotheses with their word errors: `train(..., loss="mwer")`'s data).
        backend: `hf`, or `ct2`: N-best through CTranslate2 (`model` a CT2 folder, or exported to
            one first at `ct2_quantization`), several times faster on CPU (docs/benchmarks.md).
    Returns counts: written, per kind (speech, no_speech, padded, loop), skipped, unreadable,
    hypotheses (in K-best rows).
    """
    from rlhf_asr.data import nonspeech
    from rlhf_asr.data.sources import data_kind
    from rlhf_asr.pairs import mine_pairs

    arguments = locals()
    _check(make_pairs, arguments)  # the types; MiningOptions checks the values, as the command's options do
    options = MiningOptions(**{name: arguments[name] for name in OPTION_NAMES})
    if generate_nonspeech:  # the disk the clips need, before the model loads
        nonspeech.check_nonspeech_space(generate_nonspeech, nonspeech.generated_folder(Path(output).expanduser()))
    source = as_source(data, "train")
    data_kind(source)  # a dataset's split, columns or hub cache: checked before the model loads
    if backend == "ct2":
        name = model.name if isinstance(model, LoadedModel) else str(model)
        decoder, processor, candidates_from = None, *_ct2_miner(name, ct2_quantization, device, seed)
    else:
        loaded = _loaded(model, device, dtype)
        name, decoder, processor, candidates_from = loaded.name, loaded.model, loaded.processor, None
    return mine_pairs(
        decoder,
        processor,
        source,
        output,
        options,
        resume=resume,
        model_name=name,
        skip_invalid=skip_invalid_rows,
        candidates_from=candidates_from,
    )


def train(data: str | Path, *, output_dir: str | Path, model: str = DEFAULT_MODEL, **options) -> dict:
    """Preference fine-tuning (ORPO by default) on a preference manifest (or dataset); saves into `output_dir`.

    Args:
        data: training pairs (`--train_data`), or K-best rows (`make_pairs(..., nbest=4)`).
        output_dir: where the adapter (or model), its card and run_summary.json go.
        model: the model to start from (`--base_model`).
        options: any `rlhf-asr train` option by its field name (`rlhf-asr train --help`), e.g.
            `test_data`, `peft`, `lora_r`, `loss` ("orpo", "sft", "dpo", "simpo"; "mwer" on K-best
            rows) and its weights (`alpha`; `beta`, `gamma`, `label_smoothing`, `rpo_alpha`,
            `cpo_alpha`; `ce_weight`, `reference_in_list`), `num_train_epochs`, `learning_rate`,
            `per_device_train_batch_size`, `eval_wer`, `merge_at_end`; Trainer options included.
    Returns the run summary (also in OUTPUT_DIR/run_summary.json).
    """
    from rlhf_asr.option_checks import build_options
    from rlhf_asr.trainer.config import DataArguments, ModelArguments, PreferenceConfig
    from rlhf_asr.trainer.run import run_training

    given = {"base_model": model, "train_data": data, "output_dir": output_dir, **options}
    for old, new in PreferenceConfig.older_names.items():  # an option's older name, still accepted
        if old in given:
            given[new] = given.pop(old)
    parts = []
    for cls in (ModelArguments, DataArguments, PreferenceConfig):
        names = {field.name for field in dataclasses.fields(cls) if field.init}
        values = {name: given.pop(name) for name in list(given) if name in names}
        parts.append(build_options(cls, values, TRAIN_OPTION_NAMES))
    if given:
        raise UserInputError(f"train: unknown option(s) {', '.join(sorted(given))}; `rlhf-asr train --help` lists them")
    summary = run_training(*parts)
    return {**summary, "output_dir": str(output_dir)}


def _check(function, arguments: dict, positive: Sequence[str] = ()) -> None:
    """`function`'s arguments checked as its command checks its options, in the command's words: the
    types (which the command's parser guarantees), then the counts its options dataclass checks
    (the same names: tests/commands/test_api.py tries every count on both)."""
    from rlhf_asr.option_checks import check_arguments, check_positive

    values = SimpleNamespace(**check_arguments(function, arguments, {"resume": "resume"}))  # --no_resume's inverse
    check_positive(values, *positive)


def _audio_items(audio) -> list:
    """`audio` as a list of paths and arrays, each checked, so a wrong one is one line naming it."""
    if isinstance(audio, (str, os.PathLike, np.ndarray)):
        audio = [audio]
    elif not isinstance(audio, Iterable):
        raise UserInputError(f"audio {audio!r} ({type(audio).__name__}): give a file path, an array or a list of them")
    items = list(audio)
    for index, item in enumerate(items):
        if isinstance(item, np.ndarray):
            if item.ndim != 1 or item.size == 0 or item.dtype.kind != "f":  # int16 samples would be 32768x too loud
                what = (
                    f"an array of shape {item.shape}"
                    if item.ndim != 1 or not item.size
                    else f"an array of {item.dtype}"
                )
                raise UserInputError(f"audio item {index}: {what}; give mono 16 kHz samples (floats, shape [frames])")
            if not np.isfinite(item).all():
                raise UserInputError(f"audio item {index}: has NaN or inf samples")
        elif not isinstance(item, (str, os.PathLike)):
            kind = type(item).__name__
            raise UserInputError(f"audio item {index}: {item!r} ({kind}) is neither a file path nor an array")
        elif not Path(item).is_file():
            what = "is a folder, not a file" if Path(item).is_dir() else "no such file"
            raise UserInputError(f"audio file {item}: {what}")
    return items


def _ct2_backend(backend: str, loaded: LoadedModel, ct2_model, quantization: str, device: str | None):
    """`compare_backends` (ct2) or `evaluate_faster_whisper` bound to the model's CTranslate2
    conversion: `ct2_model`, or the model exported now to a temporary folder (kept until exit)."""
    folder = ct2_model or _exported(loaded.name, quantization)
    if backend == "faster-whisper":
        from rlhf_asr.evaluation.faster_whisper_eval import evaluate_faster_whisper, faster_whisper_model

        fw_model = faster_whisper_model(folder, device=device)
        return lambda _model, *args, **kwargs: evaluate_faster_whisper(fw_model, *args, folder=folder, **kwargs)
    from rlhf_asr.evaluation.ct2_compare import compare_backends
    from rlhf_asr.inference.ct2_decode import load_ct2_whisper

    ct2 = load_ct2_whisper(folder, device=device or "auto", processor=loaded.processor)
    return partial(compare_backends, ct2=ct2)


def _ct2_miner(model: str, quantization: str, device: str | None, seed: int):
    """(processor, candidates_from) of the CTranslate2 model: `model` itself when it is a CT2
    folder, else `model` exported now to a temporary folder (kept until the process ends)."""
    import ctranslate2

    from rlhf_asr.inference.ct2_decode import ct2_candidates, load_ct2_whisper
    from rlhf_asr.model.ct2_export import is_ct2_folder
    from rlhf_asr.trainer.validate import check_model_folder

    ctranslate2.set_random_seed(seed)
    if not is_ct2_folder(model):
        check_model_folder(model, "model")
    folder = model if is_ct2_folder(model) else _exported(model, quantization)
    ct2 = load_ct2_whisper(folder, device=device or "auto")
    return ct2.processor, partial(ct2_candidates, ct2)


def _exported(model: str, quantization: str) -> Path:
    """`model` exported to CTranslate2 in a temporary folder, kept until the process ends."""
    import tempfile

    from rlhf_asr.model.ct2_export import export_ct2

    logger.info("exporting %s to CTranslate2 (%s) first", model, quantization)
    _SCRATCH.append(tempfile.TemporaryDirectory(prefix="rlhf-asr-ct2-"))
    return export_ct2(model, Path(_SCRATCH[-1].name) / "ct2", quantization)


_SCRATCH: list = []  # temporary export folders of --backend ct2, removed when the process ends
