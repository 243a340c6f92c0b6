"""`PreferenceTrainer`: the Hugging Face Trainer with a preference objective on the shared-encoder engine.

The Trainer holds a `PreferenceWhisper` (so DDP wraps the whole preference forward); checkpoints
hold the inner Whisper or PEFT model in its own standard format, so an adapter checkpoint is an
ordinary PEFT folder and resuming restores it with the optimizer, scheduler, step and RNG state.
The loss is `--loss`'s objective (loss/objectives/) over the engine's sums, as `CandidateScores`:
K = 2 from a pair batch's chosen/rejected, any K from a candidate batch (K-best rows, or the
chosen alone: trainer/batches.py); its metrics are logged under its own names, TRL's (nll_loss,
rewards/*, logps/*, log_odds_*; MWER's mwer/*).
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

from rlhf_asr.data.collator import WORD_ERRORS_KEY
from rlhf_asr.loss.objectives import CandidateScores
from rlhf_asr.loss.orth_reg import orth_reg
from rlhf_asr.model.loading import save_portable_files
from rlhf_asr.trainer.adalora_state import adalora_config_of, load_adalora_state, save_adalora_state
from rlhf_asr.trainer.batches import candidate_scores
from rlhf_asr.trainer.objective_options import training_objective
from rlhf_asr.trainer.reference import REFERENCE_KEY

logger = logging.getLogger(__name__)

ADAPTER_FILE = "adapter_model.safetensors"
FULL_MODEL_FILE = "model.safetensors"
# The order metrics are logged in: ORPO's as this trainer has always logged them, then any other.
METRIC_ORDER = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
    "nll_loss",
    "log_odds_ratio",
    "log_odds_chosen",
)


def pair_scores(out: dict, inputs: dict, uses_span: bool, reference: torch.Tensor | None = None) -> CandidateScores:
    """K = 2 `CandidateScores` from the engine's outputs `out` for the batch `inputs`.

    The chosen's span (`chosen_odds_*`) goes in only when the objective compares over it and the
    collator's diverging scope asked for one (`chosen_odds_labels`); `reference` [B, 2]: the
    starting model's chosen and rejected sums (DPO, trainer/reference.py).
    """
    spans = {}
    if uses_span and "chosen_odds_labels" in inputs:
        spans = {"chosen_span_logps": out["chosen_odds_logps"], "chosen_span_tokens": out["chosen_odds_tokens"]}
    return CandidateScores.pair(
        out["chosen_logps"],
        out["chosen_tokens"],
        out["rejected_logps"],
        out["rejected_tokens"],
        reference_logps=reference,
        **spans,
    )


def _metric_rank(name: str) -> int:
    return METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)


class PreferenceTrainer(Trainer):
    """Trainer whose `model` is a `PreferenceWhisper` and whose `args` is a `PreferenceConfig`;
    it minimises `args.loss`'s objective (built once, here, from the config's weights)."""

    def __init__(self, *args, wer_evaluator: Callable[[torch.nn.Module], dict] | None = None, **kwargs):
        """`wer_evaluator(model) -> {"wer": ..., ...}` decodes the test set at each evaluation (--eval_wer)."""
        super().__init__(*args, **kwargs)
        self.objective = training_objective(self.args)
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
        inputs = dict(inputs)
        reference = inputs.pop(REFERENCE_KEY, None)  # [B, K] the starting model's sums (DPO)
        word_errors = inputs.pop(WORD_ERRORS_KEY, None)  # [B, K] a K-best batch's (MWER)
        out = model(**inputs)
        if "candidate_logps" in out:  # K candidates per audio (trainer/batches.py)
            scores = candidate_scores(out, reference, word_errors)
        else:
            # NLL over the whole chosen; ORPO's odds ratio and SimPO's margin over `chosen_odds_*` (scope
            # diverging: the suffix); DPO compares whole transcripts (it refuses scope diverging)
            scores = pair_scores(out, inputs, self.objective.uses_chosen_span, reference)
        result = self.objective(scores)
        self._store_metrics(split, result.metrics)
        loss = result.loss
        adalora = adalora_config_of(self.whisper)
        if adalora is not None and adalora.orth_reg_weight > 0:
            # PEFT adds this in AdaLoraModel.forward, which the engine bypasses (as PEFT: train and eval).
            reg = orth_reg(self.whisper.named_parameters(), self.whisper.base_model.trainable_adapter_name)
            loss = loss + adalora.orth_reg_weight * reg
            self._stored_metrics[split]["orth_reg"].append(float(reg.detach()))
        return (loss, out) if return_outputs else loss

    def _store_metrics(self, split: str, metrics: dict[str, torch.Tensor]) -> None:
        gather = self.accelerator.gather_for_metrics
        for key in sorted(metrics, key=_metric_rank):
            self._stored_metrics[split][key].append(float(gather(metrics[key]).mean()))

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
    """Loads a checkpoint written by `PreferenceTrainer._save` into the live model, in place."""
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
