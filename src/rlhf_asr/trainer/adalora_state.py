"""AdaLoRA's training state beyond the adapter file, so that a resumed run continues exactly.

A PEFT AdaLoRA adapter is saved pruned: once rank reallocation has begun, `save_pretrained` keeps
only the singular triplets in `rank_pattern`, so the file no longer fits the full-rank model
being trained (size mismatch), and the pruned rows of A and columns of B, which keep training
and may be revived by a later reallocation, are gone. The importance averages that decide the
next reallocation live only on the rank allocator. This module writes both beside the adapter,
as `adalora_state.pt`, and restores them in place of the adapter file when resuming:

- `weights`: every lora_A / lora_B / lora_E tensor of the adapter at full rank;
- `rank_pattern`: the config's current masks (module -> kept triplets), or None before pruning;
- `ipt`, `exp_avg_ipt`, `exp_avg_unc`: the allocator's importance scores and their averages.

The model's shapes are never changed, so the optimizer state saved by the Trainer still fits.
"""

from __future__ import annotations

import json
import logging
import os

import torch

logger = logging.getLogger(__name__)

STATE_FILE = "adalora_state.pt"
IMPORTANCE = ("ipt", "exp_avg_ipt", "exp_avg_unc")


def adalora_config_of(whisper: torch.nn.Module):
    """The AdaLoraConfig of a PEFT AdaLoRA model; None for LoRA or full fine-tuning."""
    from peft import PeftType

    config = getattr(whisper, "peft_config", {}).get("default")
    return config if getattr(config, "peft_type", None) == PeftType.ADALORA else None


def _adapter_weights(peft_model) -> dict[str, torch.nn.Parameter]:
    adapter = peft_model.base_model.trainable_adapter_name
    names = tuple(f"lora_{part}.{adapter}" for part in "ABE")
    return {name: param for name, param in peft_model.named_parameters() if name.endswith(names)}


def save_adalora_state(peft_model, output_dir: str) -> None:
    """Writes `adalora_state.pt` (see the module docstring) into `output_dir`."""
    allocator = peft_model.base_model.rankallocator
    state = {
        "weights": {name: param.detach().cpu().clone() for name, param in _adapter_weights(peft_model).items()},
        "rank_pattern": adalora_config_of(peft_model).rank_pattern,
    }
    for key in IMPORTANCE:
        state[key] = {name: tensor.detach().cpu().clone() for name, tensor in getattr(allocator, key).items()}
    torch.save(state, os.path.join(output_dir, STATE_FILE))


def load_adalora_state(peft_model, checkpoint_dir: str) -> bool:
    """Restores weights, masks and importance from `checkpoint_dir` into the live full-rank model, in place.

    Returns False for a checkpoint without the state file whose adapter was not yet pruned (written
    before this file existed): its adapter file then fits and is loaded by the caller, with the
    importance averages starting again from zero. A pruned one without it cannot be resumed.
    """
    path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.isfile(path):
        if _saved_rank_pattern(checkpoint_dir):
            raise ValueError(
                f"{checkpoint_dir} holds an AdaLoRA adapter pruned by rank reallocation but no {STATE_FILE}, "
                "so it cannot be resumed"
            )
        logger.warning(f"{checkpoint_dir} has no {STATE_FILE}: AdaLoRA's importance scores restart from zero")
        return False
    state = torch.load(path, map_location="cpu", weights_only=True)
    params = _adapter_weights(peft_model)
    saved = state["weights"]
    mismatched = sorted(set(params) ^ set(saved))
    mismatched += [name for name in params if name in saved and saved[name].shape != params[name].shape]
    if mismatched:
        raise ValueError(f"checkpoint {checkpoint_dir} does not match the AdaLoRA adapter: {mismatched[:3]}")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved[name])
    adalora_config_of(peft_model).rank_pattern = state["rank_pattern"]
    # The allocator keys its scores by the names inside the PEFT wrapper (no "base_model.model." prefix).
    devices = {name: param.device for name, param in peft_model.base_model.model.named_parameters()}
    allocator = peft_model.base_model.rankallocator
    for key in IMPORTANCE:
        setattr(allocator, key, {name: tensor.to(devices[name]) for name, tensor in state[key].items()})
    return True


def _saved_rank_pattern(checkpoint_dir: str):
    """The `rank_pattern` of a checkpoint's adapter_config.json (None before AdaLoRA pruned anything)."""
    path = os.path.join(checkpoint_dir, "adapter_config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle).get("rank_pattern")
