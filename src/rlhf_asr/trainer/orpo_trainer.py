"""`ORPOTrainer`: the Hugging Face Trainer with the ORPO loss on the shared-encoder engine.

The Trainer holds a `PreferenceWhisper` (so DDP wraps the whole preference forward); checkpoints
hold the inner Whisper or PEFT model in its own standard format, so an adapter checkpoint is an
ordinary PEFT folder and resuming restores it with the optimizer, scheduler, step and RNG state.
Metric names follow TRL's ORPO trainer.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Callable

import torch
from safetensors.torch import load_file
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from rlhf_asr.loss.orpo import preference_loss
from rlhf_asr.loss.orth_reg import orth_reg
from rlhf_asr.model.loading import save_portable_files
from rlhf_asr.trainer.adalora_state import adalora_config_of, load_adalora_state, save_adalora_state

logger = logging.getLogger(__name__)

ADAPTER_FILE = "adapter_model.safetensors"
FULL_MODEL_FILE = "model.safetensors"


class ORPOTrainer(Trainer):
    """Trainer whose `model` is a `PreferenceWhisper` and whose `args` is an `ORPOConfig`."""

    def __init__(self, *args, wer_evaluator: Callable[[torch.nn.Module], dict] | None = None, **kwargs):
        """`wer_evaluator(model) -> {"wer": ..., ...}` decodes the test set at each evaluation (--eval_wer)."""
        super().__init__(*args, **kwargs)
        self.wer_evaluator = wer_evaluator
        self._stored_metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self._pruned_reported = 0  # AdaLoRA modules at rank 0 last reported, so each change is said once

    @property
    def whisper(self) -> torch.nn.Module:
        """The inner Whisper (PEFT or plain) model that checkpoints hold."""
        return self.accelerator.unwrap_model(self.model).model

    # ---- loss and metrics ----

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        split = "train" if model.training else "eval"
        out = model(**inputs)
        # NLL over the whole chosen; the odds ratio over `chosen_odds_*` (scope diverging: the suffix)
        result = preference_loss(out, alpha=self.args.alpha)
        self._store_metrics(split, out, result)
        loss = result.loss
        adalora = adalora_config_of(self.whisper)
        if adalora is not None and adalora.orth_reg_weight > 0:
            # PEFT adds this in AdaLoraModel.forward, which the engine bypasses (as PEFT: train and eval).
            reg = orth_reg(self.whisper.named_parameters(), self.whisper.base_model.trainable_adapter_name)
            loss = loss + adalora.orth_reg_weight * reg
            self._stored_metrics[split]["orth_reg"].append(float(reg.detach()))
        return (loss, out) if return_outputs else loss

    def _store_metrics(self, split: str, out: dict, result) -> None:
        gather = self.accelerator.gather_for_metrics
        chosen_rewards, rejected_rewards = gather(result.chosen_rewards), gather(result.rejected_rewards)
        values = {
            "rewards/chosen": chosen_rewards.mean(),
            "rewards/rejected": rejected_rewards.mean(),
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
            "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
            # over the odds span, as TRL logs the means its odds ratio compares
            "logps/chosen": gather((out["chosen_odds_logps"] / out["chosen_odds_tokens"]).detach()).mean(),
            "logps/rejected": gather((out["rejected_logps"] / out["rejected_tokens"]).detach()).mean(),
            "nll_loss": gather(result.nll_loss).mean(),
            "log_odds_ratio": gather(result.log_odds_ratio).mean(),
            "log_odds_chosen": gather(result.log_odds_chosen).mean(),
        }
        for key, value in values.items():
            self._stored_metrics[split][key].append(float(value))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        metrics = super().evaluate(*args, **kwargs)
        if self.wer_evaluator is not None and self.is_world_process_zero():
            # Decoding needs no collective ops, so the other ranks need not wait for it.
            whisper = self.whisper
            was_training = whisper.training
            whisper.eval()
            with torch.no_grad():
                scores = self.wer_evaluator(whisper)
            whisper.train(was_training)
            extra = {f"eval_{key}": value for key, value in scores.items() if isinstance(value, (int, float))}
            self.log(extra)
            metrics.update(extra)
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        split = "train" if "loss" in logs else "eval"
        prefix = "eval_" if split == "eval" else ""
        for key, values in self._stored_metrics[split].items():
            if values:
                logs[f"{prefix}{key}"] = sum(values) / len(values)
        self._stored_metrics[split].clear()
        super().log(logs, start_time)

    # ---- batching ----

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_by_length and hasattr(dataset, "transcript_lengths"):
            # The stock sampler would load every clip to measure it; transcript lengths are known.
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=dataset.transcript_lengths(),
            )
        return super()._get_train_sampler(train_dataset)

    def get_resumed_dataloader(self, dataloader, num_batches: int):
        """A resumed `--streaming` run: the stream itself skips to where the checkpoint was, across
        passes and with its shuffle order (data/dataset.py `resume_after`); other sets: the Trainer's skip."""
        dataset = self.train_dataset
        if not hasattr(dataset, "resume_after"):
            return super().get_resumed_dataloader(dataloader, num_batches)
        accumulation = self.args.gradient_accumulation_steps
        # rows per batch over all processes: accelerate hands each process its share of one such batch
        rows = self._train_batch_size * max(self.args.world_size, 1)
        dataset.resume_after(num_batches // accumulation, rows, accumulation, self.args.dataloader_drop_last)
        return dataloader

    # ---- checkpoints ----

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        peft_config = getattr(self.whisper, "peft_config", {}).get("default")
        rank_pattern = getattr(peft_config, "rank_pattern", None) or {}  # AdaLoRA: module -> kept ranks
        pruned = [name for name, kept in rank_pattern.items() if not any(kept)]
        with warnings.catch_warnings():
            if pruned:
                # PEFT reads zero-size LoRA tensors as unsharded DeepSpeed/FSDP weights; after AdaLoRA's
                # final budget they are modules pruned to rank 0, saved and loaded correctly.
                warnings.filterwarnings("ignore", message=".*LoRA tensor\\(s\\) have invalid shape")
                if len(pruned) != self._pruned_reported:
                    logger.info(f"AdaLoRA has pruned {len(pruned)} of {len(rank_pattern)} adapted modules to rank 0")
                    self._pruned_reported = len(pruned)
            self.whisper.save_pretrained(
                output_dir, safe_serialization=True, save_embedding_layers=_embedding_layers_to_save(self.whisper)
            )
        if adalora_config_of(self.whisper) is not None:
            save_adalora_state(self.whisper, output_dir)  # the adapter is saved pruned: full rank, masks, importance
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        save_portable_files(
            output_dir, self.whisper, self.processing_class
        )  # portable base name, preprocessor_config.json
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        load_whisper_weights(self.whisper, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        load_whisper_weights(self.whisper, self.state.best_model_checkpoint)


def load_whisper_weights(whisper: torch.nn.Module, checkpoint_dir: str) -> None:
    """Loads a checkpoint written by `ORPOTrainer._save` into the live model, in place."""
    adapter = os.path.join(checkpoint_dir, ADAPTER_FILE)
    full = os.path.join(checkpoint_dir, FULL_MODEL_FILE)
    if hasattr(whisper, "peft_config"):
        from peft import set_peft_model_state_dict

        if not os.path.isfile(adapter):
            raise ValueError(f"{checkpoint_dir} holds no {ADAPTER_FILE}: not a checkpoint of this adapter run")
        if adalora_config_of(whisper) is not None and load_adalora_state(whisper, checkpoint_dir):
            return
        result = set_peft_model_state_dict(whisper, load_file(adapter))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise ValueError(f"checkpoint {checkpoint_dir} does not match the adapter: {unexpected[:3]}")
        return
    if not os.path.isfile(full):
        raise ValueError(f"{checkpoint_dir} holds no {FULL_MODEL_FILE}: not a checkpoint of this run")
    missing, unexpected = whisper.load_state_dict(load_file(full), strict=False)
    # The output projection is tied to the token embedding and saved once.
    missing = [key for key in missing if key != "proj_out.weight"]
    if missing or unexpected:
        raise ValueError(f"checkpoint {checkpoint_dir} does not match the model: {(missing + unexpected)[:3]}")


def _embedding_layers_to_save(peft_model) -> bool | str:
    """PEFT's "auto" asks the hub whether the base model's vocabulary differs, which prints a warning
    offline or for a bundled name; this tool never resizes it, so only an adapted embedding needs saving."""
    from peft.utils.other import EMBEDDING_LAYER_NAMES

    adapted = {name.rsplit(".", 1)[-1] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    return "auto" if adapted & set(EMBEDDING_LAYER_NAMES) else False
