"""One preference training run of Whisper on a preference manifest, end to end (`rlhf-asr train`, the demo, results).

Assembles the components (manifest reader, dataset of pairs or K-best rows, collator, model with
PEFT, the packed engine, PreferenceTrainer with `--loss`'s objective, its callbacks and, for DPO,
the starting model's log-probs), trains, and saves the final model with its processor.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from functools import partial
from pathlib import Path

from transformers import set_seed
from transformers.trainer_utils import IntervalStrategy

from rlhf_asr.data.augment import build_augmenter
from rlhf_asr.data.dataset import PreferenceDataset, StreamingPreferenceDataset
from rlhf_asr.data.examples import KBestExample
from rlhf_asr.data.kbest import KBestDataset
from rlhf_asr.data.language import normalize_language
from rlhf_asr.data.sources import read_data
from rlhf_asr.data.stream import ExampleStream
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.empty_output import allow_empty_output
from rlhf_asr.model.encoder_cache import EncoderCache
from rlhf_asr.model.engine import PreferenceWhisper
from rlhf_asr.model.loading import load_processor, resolve_model_source
from rlhf_asr.model.peft_setup import apply_peft, load_training_model
from rlhf_asr.trainer.batches import check_run_data, run_collator, uses_candidates
from rlhf_asr.trainer.callbacks import AdaLoraCallback, CurvePlotCallback, log_metrics_instead_of_printing
from rlhf_asr.trainer.config import DataArguments, ModelArguments, PreferenceConfig
from rlhf_asr.trainer.guards import FiniteTrainingGuard
from rlhf_asr.trainer.model_out import card_facts, check_model_out, finish_model_out, name_portably
from rlhf_asr.trainer.objective_options import training_objective, weights_of
from rlhf_asr.trainer.preference_trainer import PreferenceTrainer
from rlhf_asr.trainer.reference import attach_reference, model_files
from rlhf_asr.trainer.unsupported import refuse_untested_backends
from rlhf_asr.trainer.validate import streams_training, validate_training_run

logger = logging.getLogger(__name__)


def default_language(data_args: DataArguments, encoder: TranscriptEncoder) -> str | None:
    """Language code for rows without one: --language, checked against the tokenizer (an option
    check, before any data is read). None when not given, and always for English-only models, which
    have no language token."""
    if not data_args.language:
        return None
    try:
        code = normalize_language(data_args.language)
    except ValueError as error:
        raise UserInputError(f"--language: {error}") from None
    if not encoder.multilingual:
        if code != "en":
            logger.warning(f"English-only model: --language {data_args.language} is ignored (no language token)")
        return None
    if code not in (encoder.known_languages() or ()):
        raise UserInputError(f"--language {data_args.language}: this model's tokenizer has no language token {code!r}")
    return code


def check_row_languages(path: str, examples: list, encoder: TranscriptEncoder, language: str | None) -> None:
    """Never a guessed language: multilingual rows need their own or --language; English-only models
    drop a row's language (they have no language token), which is said once, with the count."""
    if encoder.multilingual:
        missing = [example.where for example in examples if example.language is None]
        if missing and language is None:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise UserInputError(
                f'{path}: {len(missing)} row(s) have no "language" ({shown}) and this model is multilingual: '
                'add "language" to each row or pass --language (e.g. --language en)'
            )
        return
    other = Counter(example.language for example in examples if example.language not in (None, "en"))
    if other:
        languages = ", ".join(f"{code} ({n})" for code, n in other.most_common())
        logger.warning(
            f"English-only model: {sum(other.values())} row(s) of {path} in another language "
            f"({languages}) are trained without a language token, as English-only models are"
        )


def build_dataset(
    path: str,
    data_args: DataArguments,
    processor,
    encoder,
    augmenter=None,
    max_rows=None,
    language: str | None = None,
    split: str = "train",
    keep_correct: bool = True,
):
    """The dataset of one manifest or dataset; `language` is the run's default_language (rows without one).

    `split`: "train" (--train_data's split rule) or "test" (--test_data's). Preference pairs give a
    PreferenceDataset, K-best rows (make-pairs --nbest) a KBestDataset, which with `keep_correct`
    False leaves out the hypotheses without word errors (the pairwise objectives' rejected).
    """
    checks = data_args.row_checks(encoder.known_languages(), kbest_rows=True)
    report = read_data(data_args.data_source(path, split, max_rows), "preference", checks)
    logger.info(report.summary())
    examples = report.examples[:max_rows] if max_rows else report.examples
    check_row_languages(path, examples, encoder, language)
    kbest = isinstance(examples[0], KBestExample)
    dataset = (partial(KBestDataset, keep_correct=keep_correct) if kbest else PreferenceDataset)(
        examples,
        processor.feature_extractor,
        encoder,
        default_language=language,
        augmenter=augmenter,
        skip_invalid=data_args.skip_invalid_rows,
    )
    if dataset.skipped:
        logger.warning(f"{path}: {len(dataset.skipped)} more row(s) skipped: transcript too long or not encodable")
    return dataset, report


def build_stream(data_args: DataArguments, config: PreferenceConfig, processor, encoder, augmenter, language):
    """The training set as a torch IterableDataset over the dataset's rows, each checked when reached."""
    if config.group_by_length:
        raise UserInputError("--group_by_length needs every row's length up front: not with --streaming")
    if config.dataloader_num_workers > 0:
        raise UserInputError("--streaming reads one stream: each dataloader worker would repeat it; use 0 workers")
    stream = ExampleStream(
        data_args.data_source(data_args.train_data, "train", data_args.max_train_rows),
        "preference",
        data_args.row_checks(encoder.known_languages()),
    )
    buffer = data_args.stream_shuffle_buffer
    shuffle = (
        f"shuffled in a {buffer}-row buffer" if buffer > 1 else f"in stream order (--stream_shuffle_buffer {buffer})"
    )
    logger.info(f"{stream.label}: streamed, rows checked as they are reached, {shuffle} ({config.max_steps} steps)")
    dataset = StreamingPreferenceDataset(
        stream,
        processor.feature_extractor,
        encoder,
        language,
        augmenter,
        data_args.skip_invalid_rows,
        shuffle_buffer=buffer,
        # as the Trainer seeds its sampler: a resumed run, given the same seed, draws the same order
        seed=config.data_seed if config.data_seed is not None else config.seed,
    )
    return dataset, stream


def total_training_steps(num_examples: int, config: PreferenceConfig) -> int:
    if config.max_steps and config.max_steps > 0:
        return int(config.max_steps)
    batches = math.ceil(num_examples / (config.per_device_train_batch_size * max(config.world_size, 1)))
    return max(1, math.ceil(config.num_train_epochs * math.ceil(batches / config.gradient_accumulation_steps)))


def make_encoder_cache(
    config: PreferenceConfig, model_args: ModelArguments, data_args: DataArguments
) -> EncoderCache | None:
    if config.encoder_cache == "none":
        return None
    if not model_args.freeze_encoder or data_args.augment_config_path:
        raise UserInputError("--encoder_cache needs --freeze_encoder True and no --augment_config_path")
    directory = Path(config.output_dir) / "encoder_cache" if config.encoder_cache == "disk" else None
    return EncoderCache(max_bytes=config.encoder_cache_mb * 1024**2, directory=directory)


def wer_evaluator(processor, data_args: DataArguments, config: PreferenceConfig, language: str | None):
    """With --eval_wer: a function scoring a model's transcripts of the test set (WER, CER, ...).

    The hallucination metrics come along (see `evaluation/hallucination.py`); a rate whose rows the
    test set lacks (no no-speech rows: no hallucination rate) is left out rather than logged as 0.

    Each row is decoded in its own language (rows without one: `language`, the run's default), so a
    multilingual test set is scored per language, not all as one.
    """
    if not (config.eval_wer and data_args.test_data):
        return None
    from rlhf_asr.evaluation.evaluate import evaluate_manifest

    def evaluate(model) -> dict:
        metrics = evaluate_manifest(
            model,
            processor,
            data_args.data_source(data_args.test_data, "test"),
            default_language=language,
            batch_size=config.per_device_eval_batch_size,
            max_rows=config.eval_wer_max_rows,
        )
        keep = ("wer", "cer", "preference_accuracy", "rtf", "hallucination_rate", "insertion_rate", "repetition_rate")
        return {key: metrics[key] for key in keep if metrics.get(key) is not None}

    return evaluate


def let_empty_output(model, encoder: TranscriptEncoder, train_set) -> bool:
    """With no-speech pairs and a target that allows it (--nospeech_target eot or both), the trained
    model's generation config lets <|endoftext|> come first, so deployed decoders can write nothing
    (model/empty_output.py). A stream's rows are not known up front: its target decides alone."""
    target = encoder.nospeech_target
    rows = getattr(train_set, "no_speech_rows", None)  # None: a stream
    if not target.lets_empty_output or rows == 0 or not allow_empty_output(model, encoder.eot):
        return False
    counted = "a stream, rows not counted up front" if rows is None else f"{rows} no-speech pair(s)"
    logger.info(
        f"--nospeech_target {target.name} ({counted}): the saved generation config lets <|endoftext|> come first, "
        "so generate, the pipeline and a CTranslate2 export can write nothing on silence"
    )
    return True


def reference_facts(model_path: str, model_args: ModelArguments, config: PreferenceConfig, candidates: bool) -> dict:
    """What besides the rows decides the starting model's log-probs (trainer/reference.py's fingerprint).

    `candidates`: the run's batches are candidate batches (trainer/batches.py), scored by `forward_candidates`.
    """
    return {
        "base_model": model_files(model_path),
        "model": [model_args.model_dtype, model_args.attn_implementation, model_args.use_8bit],
        "engine": config.engine,
        "mixed_precision": "fp16" if config.fp16 else "bf16" if config.bf16 else "no",
        "collator": [config.completion_only_loss, config.rejected_scope, *(["candidates"] if candidates else [])],
    }


def last_eval_metrics(log_history: list[dict]) -> dict | None:
    evals = [row for row in log_history if "eval_loss" in row]
    return evals[-1] if evals else None


def run_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    config: PreferenceConfig,
    encoder_cache: EncoderCache | None = None,
) -> dict:
    """Trains and saves into `config.output_dir`; returns the run summary also written to run_summary.json.

    `encoder_cache` lets a caller that already ran the (frozen) encoder on the training audio hand
    its outputs over, keyed by audio file and encoder (`model/encoder_cache.py`).
    """
    refuse_untested_backends(config)  # DeepSpeed / FSDP: before any data or model loading
    validate_training_run(model_args, data_args, config)  # options and files, before any loading
    check_model_out(model_args, config)  # --merge_at_end, --push_to_hub: before any loading
    if not data_args.train_data:
        raise UserInputError("--train_data is required")
    encoder_cache = encoder_cache or make_encoder_cache(config, model_args, data_args)  # option errors first
    set_seed(config.seed)
    model_path = resolve_model_source(model_args.base_model)
    processor = load_processor(model_path)
    try:
        encoder = TranscriptEncoder(
            processor.tokenizer,
            task=data_args.task,
            timestamps=data_args.timestamps,
            nospeech=data_args.nospeech_target,
        )
    except ValueError as error:
        raise UserInputError(str(error)) from None
    language = default_language(data_args, encoder)

    augmenter = build_augmenter(data_args.augment_config_path)
    objective = training_objective(config)  # what it reads decides the K-best hypotheses kept and the batches
    keep_correct = objective.needs_word_errors  # MWER: every hypothesis; pairwise: those in error, the rejected
    if streams_training(data_args, config):
        train_set, train_report = build_stream(data_args, config, processor, encoder, augmenter, language)
    else:
        train_set, train_report = build_dataset(
            data_args.train_data, data_args, processor, encoder, augmenter, data_args.max_train_rows, language,
            keep_correct=keep_correct,
        )  # fmt: skip
    eval_set = None
    if data_args.test_data:
        eval_set, _ = build_dataset(
            data_args.test_data, data_args, processor, encoder, language=language, split="test",
            keep_correct=keep_correct,
        )  # fmt: skip
    else:
        config.eval_strategy = IntervalStrategy.NO
    given = {"--train_data": (data_args.train_data, train_set), "--test_data": (data_args.test_data, eval_set)}
    check_run_data(objective, config.rejected_scope, given)  # before the model loads
    candidates = uses_candidates(objective, [train_set, eval_set])

    total_steps = total_training_steps(len(train_set) if hasattr(train_set, "__len__") else 0, config)
    model = load_training_model(model_path, model_args.attn_implementation, model_args.use_8bit, model_args.model_dtype)
    name_portably(model, model_path)  # saved configs and cards name `tiny.en` / the hub id, not this machine's cache
    let_empty_output(model, encoder, train_set)
    model = apply_peft(model, model_args, total_steps)
    engine = PreferenceWhisper(
        model,
        mode=config.engine,
        freeze_encoder=model_args.freeze_encoder,
        logps_chunk_size=config.logps_chunk_size,
        encoder_cache=encoder_cache,
        checkpoint_decoder=config.checkpoint_decoder,
    )
    callbacks = [CurvePlotCallback()] if config.plot else []
    # NaN/inf stops the run before it is saved. MWER's risk is mean-subtracted (near 0, either sign):
    # its growth says nothing of divergence, its NLL term's does.
    callbacks.append(FiniteTrainingGuard("nll_loss" if objective.needs_word_errors else "loss"))
    adalora = AdaLoraCallback(model) if model_args.peft_method == "adalora" else None
    if adalora:
        callbacks.append(adalora)

    trainer = PreferenceTrainer(
        model=engine,
        args=config,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=run_collator(
            objective, candidates, processor.tokenizer.eos_token_id, config.completion_only_loss, config.rejected_scope
        ),
        processing_class=processor,
        callbacks=callbacks,
        wer_evaluator=wer_evaluator(processor, data_args, config, language),
    )
    log_metrics_instead_of_printing(trainer)
    for note in getattr(config, "setup_notes", []):  # after every check, so an error stays one line
        logger.info(note)
    if trainer.objective.needs_reference:  # DPO: before train() loads a checkpoint or takes a step
        attach_reference(trainer, engine, reference_facts(model_path, model_args, config, candidates))
    result = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    if isinstance(train_set, StreamingPreferenceDataset):
        train_set.say_rows_read()  # said at the end of the first pass; else here, for the rows reached
    train_skipped = len(train_report.skipped) + len(train_set.skipped)
    # A stream: the rows reached (and usable) before --max_steps ended the run.
    train_rows = len(train_set) if hasattr(train_set, "__len__") else train_report.rows_read - train_skipped
    facts = card_facts(
        model_args,
        data_args,
        config,
        trainer,
        train_set,
        train_rows,
        train_skipped,
        eval_set,
        encoder.multilingual,
        language,
    )
    written = finish_model_out(trainer, config, facts)  # final save, model card, --merge_at_end, --push_to_hub
    summary = {
        "base_model": facts.base_model,
        "peft": model_args.peft_method,
        "loss": trainer.objective.name,
        "loss_weights": weights_of(trainer.objective),
        "world_size": config.world_size,
        "train_rows": train_rows,
        "train_rows_skipped": train_skipped,
        "global_step": trainer.state.global_step,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_loss": result.metrics.get("train_loss"),
        "final_eval": last_eval_metrics(trainer.state.log_history),
        "adalora_rank_history": adalora.rank_history if adalora else None,
        "merged_dir": Path(written["merged"]).name if written.get("merged") else None,  # inside output_dir
    }
    if trainer.is_world_process_zero():
        Path(config.output_dir, "run_summary.json").write_text(json.dumps(summary, indent=2))
        logger.info(f"saved to {config.output_dir}")
    return summary
