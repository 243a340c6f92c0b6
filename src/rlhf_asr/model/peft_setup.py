"""A Whisper model ready to train: 8-bit loading, LoRA / AdaLoRA / full fine-tuning, frozen encoder."""

from __future__ import annotations

import importlib.util
import logging
import math
import os

import torch
from peft import AdaLoraConfig, LoraConfig, get_peft_model, prepare_model_for_kbit_training

from rlhf_asr.errors import UserInputError
from rlhf_asr.model.loading import load_base_model, quiet_peft_deprecations

logger = logging.getLogger(__name__)


def target_module_pattern(modules: list[str], decoder_only: bool) -> str | list[str]:
    """PEFT target modules; a regex restricted to the decoder when the encoder is frozen."""
    if not decoder_only:
        return modules
    return rf"model\.decoder\..*\.({'|'.join(modules)})"


def eight_bit_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


def local_device_map() -> dict[str, int]:
    """This process's GPU: under torchrun each process has its own (LOCAL_RANK), not all GPU 0."""
    return {"": int(os.environ.get("LOCAL_RANK", 0))}


def load_training_model(
    source: str, attn_implementation: str = "sdpa", use_8bit: bool = False, dtype: str | torch.dtype = "float32"
):
    """WhisperForConditionalGeneration for training, in 8 bits only where CUDA and bitsandbytes exist.

    Weights load in `dtype`, float32 by default whatever the checkpoint stores: large-v3 and turbo
    are stored in fp16, and fp16 trainable weights fail under fp16 mixed precision ("Attempting to
    unscale FP16 gradients"). In 8 bits PEFT's k-bit preparation casts the rest to float32 anyway.
    """
    if use_8bit and not eight_bit_available():
        logger.warning("--use_8bit needs CUDA and bitsandbytes: loading in full precision instead")
        use_8bit = False
    if use_8bit:
        from transformers import BitsAndBytesConfig, WhisperForConditionalGeneration

        model = WhisperForConditionalGeneration.from_pretrained(
            source, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map=local_device_map()
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = load_base_model(source, dtype)
    model.config._attn_implementation = attn_implementation
    # Generation settings of old checkpoints would force a language/task on evaluation.
    model.config.forced_decoder_ids = None
    model.generation_config.forced_decoder_ids = None
    return model


def apply_peft(model, model_args, total_steps: int):
    """Wraps `model` for the chosen method and freezes what is not trained; prints the trainable share."""
    modules = [name.strip() for name in model_args.target_modules.split(",") if name.strip()]
    method = model_args.peft_method
    if model_args.freeze_encoder:
        model.model.encoder.requires_grad_(False)
    if method == "none":
        model.model.encoder.embed_positions.requires_grad_(False)
        report_trainable(model, method)
        return model
    targets = target_module_pattern(modules, model_args.freeze_encoder)
    if method == "lora":
        config = LoraConfig(
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=targets,
        )
    elif method == "adalora":
        config = adalora_config(model_args, targets, total_steps)
    else:
        raise UserInputError(f"unknown --peft {method!r}: use lora, adalora or none")
    with quiet_peft_deprecations():
        model = get_peft_model(model, config)
    report_trainable(model, method)
    return model


def adalora_config(model_args, targets, total_steps: int) -> AdaLoraConfig:
    """AdaLoRA with its pruning schedule scaled to this run's length.

    Rank is pruned from init_r towards target_r between step tinit and step total - tfinal, so both
    are set as shares of the run; AdaLoRA rejects a schedule with no room for pruning.
    """
    tinit = max(1, math.floor(model_args.adalora_tinit * total_steps))
    tfinal = max(1, math.floor(model_args.adalora_tfinal * total_steps))
    if total_steps - tinit - tfinal < 1:
        tinit, tfinal = 0, 0
    return AdaLoraConfig(
        init_r=model_args.adalora_init_r,
        target_r=model_args.adalora_target_r,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=model_args.adalora_delta_t,
        total_step=max(total_steps, 1),
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets,
    )


def report_trainable(model, method: str) -> None:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(f"{method}: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%)")
