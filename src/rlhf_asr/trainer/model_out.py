"""What a training run leaves besides the adapter: its model card, the merged folder, the hub push.

A trained folder should work on any machine: the adapter names its base portably (not this
machine's cache folder), the card (model/card.py) replaces PEFT's blank template,
`--merge_at_end` adds OUTPUT_DIR/merged, a standard Hugging Face folder for tools without peft
(model/merge.py), and `--push_to_hub` uploads the adapter folder with that card. What could only
fail at the end (a push offline or without a token, a merged folder of an earlier run) is checked
before any loading, so it is one line up front rather than an error after hours of training.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

from rlhf_asr.errors import UserInputError
from rlhf_asr.model.card import CardFacts, write_model_card
from rlhf_asr.model.core import whisper_generation_config
from rlhf_asr.model.empty_output import lets_empty_output, save_generation_config
from rlhf_asr.model.loading import _offline, portable_model_name
from rlhf_asr.trainer.batches import is_kbest
from rlhf_asr.trainer.config import DataArguments, ModelArguments, PreferenceConfig
from rlhf_asr.trainer.objective_options import weights_of
from rlhf_asr.trainer.reference import REFERENCE_FILE

logger = logging.getLogger(__name__)

MERGED_DIR = "merged"
# Not uploaded at the end: checkpoints and `_*` (as the Trainer's own push), the merged copy, the encoder
# cache, DPO's reference log-probs.
PUSH_IGNORE = ["_*", "checkpoint-*", "checkpoint-*/**", f"{MERGED_DIR}/**", "encoder_cache/**", REFERENCE_FILE]


def check_model_out(model_args: ModelArguments, config: PreferenceConfig) -> None:
    """Option checks of the run's ending, before any data or model is loaded."""
    if config.merge_at_end:
        if model_args.peft_method == "none":
            raise UserInputError(
                "--merge_at_end merges an adapter; with --peft none --output_dir already holds the full model"
            )
        merged = Path(config.output_dir).expanduser() / MERGED_DIR
        if merged.exists() and not config.overwrite_output_dir and (not merged.is_dir() or any(merged.iterdir())):
            raise UserInputError(
                f"--merge_at_end: {merged} already exists (an earlier run's); pass --overwrite_output_dir True to "
                "replace it at the end of training, or another --output_dir"
            )
    if config.push_to_hub:
        check_hub_push(config)


def check_hub_push(config: PreferenceConfig) -> None:
    """--push_to_hub needs the network and a token with write access; the Trainer would find out late."""
    from huggingface_hub import get_token

    if _offline():
        raise UserInputError(
            "--push_to_hub needs the network and this machine is offline (HF_HUB_OFFLINE): train without it and "
            "upload --output_dir later (`hf upload REPO_ID OUTPUT_DIR`)"
        )
    if not (config.hub_token or get_token()):
        raise UserInputError(
            "--push_to_hub needs a Hugging Face token with write access: run `hf auth login`, set HF_TOKEN or "
            "pass --hub_token"
        )
    if config.encoder_cache == "disk":
        raise UserInputError(
            "--push_to_hub with --encoder_cache disk would upload the cache (OUTPUT_DIR/encoder_cache) at every "
            "save; use --encoder_cache memory"
        )


def name_portably(model, source: str) -> None:
    """Names the loaded base model portably (`tiny.en`, a hub id) instead of this machine's cache folder.

    PEFT copies the model's name into every adapter_config.json and checkpoint README it writes.
    """
    model.name_or_path = model.config.name_or_path = portable_model_name(source)


def _wer_rows(log_history: list[dict]) -> tuple[float | None, float | None, int | None]:
    """(WER before training, WER of the last evaluation after it, that evaluation's step); None: not run."""
    rows = [row for row in log_history if "eval_wer" in row]
    before = next((row["eval_wer"] for row in rows if row.get("step") == 0), None)
    if not rows or rows[-1].get("step", 0) == 0:
        return before, None, None
    return before, rows[-1]["eval_wer"], rows[-1].get("step")


def card_facts(
    model_args: ModelArguments,
    data_args: DataArguments,
    config: PreferenceConfig,
    trainer,
    train_set,
    train_rows: int,
    train_skipped: int,
    eval_set,
    multilingual: bool,
    language: str | None,
) -> CardFacts:
    """The facts of this run that its model card states (`train_rows`: usable rows, a stream's as reached)."""
    generation = whisper_generation_config(trainer.model.model)  # the engine's model: PeftModel or Whisper
    examples = getattr(train_set, "examples", None)  # a --streaming set keeps no rows
    if multilingual and examples is not None:
        languages = tuple(sorted({example.language or language for example in examples} - {None}))
    elif multilingual:
        languages = (language,) if language else ()
    else:
        languages = ("en",)  # English-only models have no other language token
    adapter = model_args.peft_method != "none"
    base = portable_model_name(model_args.base_model)
    before, after, after_step = _wer_rows(trainer.state.log_history)
    evaluated = config.eval_wer and eval_set is not None
    return CardFacts(
        base_model=base,
        base_is_folder=Path(base).expanduser().is_dir(),
        library="peft" if adapter else "transformers",
        peft=model_args.peft_method,
        lora_r=(model_args.adalora_init_r if model_args.peft_method == "adalora" else model_args.lora_r)
        if adapter
        else None,
        lora_alpha=model_args.lora_alpha if adapter else None,
        target_modules=model_args.target_modules if adapter else None,
        alpha=config.alpha,
        loss=trainer.objective.name,
        loss_weights=tuple(weights_of(trainer.objective).items()),
        epochs=config.num_train_epochs,
        learning_rate=config.learning_rate,
        steps=trainer.state.global_step,
        batch_size=config.per_device_train_batch_size,
        rejected_scope=config.rejected_scope,
        freeze_encoder=model_args.freeze_encoder,
        task=data_args.task,
        train_pairs=train_rows,
        train_pairs_skipped=train_skipped,
        test_pairs=len(eval_set) if eval_set is not None else None,
        languages=languages,
        wer_before=before,
        wer_after=after,
        wer_after_step=after_step,
        wer_rows=min(config.eval_wer_max_rows, len(eval_set)) if evaluated else None,
        no_speech_pairs=getattr(train_set, "no_speech_rows", None),
        nospeech_target=data_args.nospeech_target,
        empty_output=lets_empty_output(generation, generation.eos_token_id),
        kbest=is_kbest(train_set),
    )


def finish_model_out(trainer, config: PreferenceConfig, facts: CardFacts) -> dict:
    """Saves the final model with its card, merges it (--merge_at_end) and pushes it (--push_to_hub).

    Returns what was written: {"card": ..., "merged": ... or None, "pushed": repo id or None}.
    """
    from rlhf_asr.model.merge import merge_adapter

    output = Path(config.output_dir)
    # The Trainer's own push would upload first and write its card over ours: ours comes last.
    trainer.save_model(config.output_dir, _internal_call=True)
    if not trainer.is_world_process_zero():
        return {}
    # The config it was trained and evaluated with (PEFT saves none beside an adapter): merge and export read it.
    save_generation_config(trainer.model.model, output)
    written = {"card": str(write_model_card(output, facts)), "merged": None, "pushed": None}
    if config.merge_at_end:
        merged = output / MERGED_DIR
        if merged.exists():  # an earlier run's, allowed by --overwrite_output_dir (check_model_out)
            shutil.rmtree(merged) if merged.is_dir() else merged.unlink()
        merge_adapter(output, merged)
        write_model_card(merged, replace(facts, library="transformers", merged=True))
        written["merged"] = str(merged)
        logger.info(f"merged model written to {merged}")
    if config.push_to_hub:
        written["pushed"] = push_output(trainer, config)
    return written


def push_output(trainer, config: PreferenceConfig) -> str:
    """Uploads the output folder (adapter, processor, card, run summary) to the run's hub repo."""
    from transformers.trainer import hf_api

    pending = getattr(trainer, "push_in_progress", None)
    if pending is not None:
        pending.wait_until_done()  # the uploads of checkpoints during training
    repo_id = trainer.hub_model_id
    hf_api().upload_folder(
        repo_id=repo_id,
        folder_path=config.output_dir,
        commit_message="End of training",
        token=config.hub_token,
        ignore_patterns=PUSH_IGNORE,
        revision=config.hub_revision,
    )
    logger.info(f"pushed {config.output_dir} to https://huggingface.co/{repo_id}")
    return repo_id
