"""DPO's reference: every pair's log-probs under the starting model, computed once before training.

TRL's `precompute_ref_log_probs`: the chosen and rejected sums of each training (and held-out)
pair under the model as it starts, through the same engine and collator as training (the same
tokens, labels and scope), in eval mode, under no_grad and the run's autocast. A DPO step then
costs what an ORPO step costs, and no second model is held:

- LoRA / AdaLoRA: the trained model itself with its adapters disabled (PEFT's `disable_adapter`),
  which is the base model at any step.
- `--peft none`: the model itself, before `trainer.train()` loads a checkpoint or takes a step, so
  it is the starting model even on a resume; no frozen copy is made.

K-best rows (make-pairs --nbest) are scored the same way, every candidate of a row: the reference
and each hypothesis, through the run's candidate collator.

Stored as OUTPUT_DIR/reference_logps.safetensors: per split ("train", "eval") a [N, K] float32
table whose row i is the dataset's row i: (chosen, rejected) for pairs, K = 2; the candidates in
their order for K-best rows, K the most any row has (0 past a row's last); and a fingerprint of
what decides the numbers: the base model's files, dtype, attention kernel, 8-bit loading, engine
and mixed precision, the collator's options, and every row's audio (path, size, mtime) and token
ids (which carry the pairs file, the row filters and every tokenisation option). A split whose
fingerprint differs is recomputed (said in one line), never reused; a matching one is read back
(every epoch and a resumed run use the same numbers). Rows are looked up by position, not by the
batch's `example_index`: that is the audio's key, which pairs of one audio share.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from rlhf_asr.data.collator import WORD_ERRORS_KEY
from rlhf_asr.model.encoder_cache import audio_key

logger = logging.getLogger(__name__)

REFERENCE_FILE = "reference_logps.safetensors"
REFERENCE_KEY = "reference_logps"  # an item's [K] / a batch's [B, K] starting-model sums, candidate by candidate
FORMAT = "rlhf-asr reference log-probs v1"


def model_files(source: str) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of each file of a model folder: another checkpoint, or one rewritten, differs."""
    folder = Path(source)
    if not folder.is_dir():
        return []
    found = [path for path in folder.rglob("*") if path.is_file() and not path.name.startswith(".")]
    return [(str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(found)]


def split_fingerprint(dataset, run_facts: dict) -> str:
    """Hex digest of `run_facts` and every row of `dataset` (pairs or K-best rows): its audio and tokens."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(run_facts, sort_keys=True).encode())
    for audio_path, transcripts in dataset.encoded_rows():
        tokens = itertools.chain.from_iterable((transcript.ids, transcript.prefix_len) for transcript in transcripts)
        digest.update(f"{(audio_key(audio_path), *tokens)}\n".encode())
    return digest.hexdigest()


def candidate_sums(out: dict) -> torch.Tensor:
    """[B, K] summed log-probs from the engine's outputs: a candidate batch's, or a pair's chosen and rejected."""
    if "candidate_logps" in out:
        return out["candidate_logps"]
    return torch.stack([out["chosen_logps"], out["rejected_logps"]], dim=1)


def starting_model(engine):
    """The context in which `engine` scores as the starting model: adapters disabled (PEFT), else
    the model as it is (full fine-tuning: only called before the first step)."""
    model = engine.model
    return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()


def compute_reference_logps(
    engine, dataset: Dataset, collator: Callable, batch_size: int, autocast=None, workers: int = 0
) -> torch.Tensor:
    """[N, K] float32 sums of every row's candidates (pairs: chosen, rejected), in order, under the
    starting model; a row with fewer than K candidates has 0 past its last."""
    device = next(engine.parameters()).device
    was_training, cache = engine.training, getattr(engine, "encoder_cache", None)
    engine.eval()
    engine.encoder_cache = None  # the cache keeps training's entries; these are scored once
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator, num_workers=workers)
    rows = []
    try:
        with torch.no_grad(), starting_model(engine), autocast or nullcontext():
            for batch in loader:
                batch.pop(WORD_ERRORS_KEY, None)  # the objective's, not the engine's
                out = engine(**{key: value.to(device) for key, value in batch.items()})
                rows.append(candidate_sums(out).float().cpu())
    finally:
        engine.encoder_cache = cache
        engine.train(was_training)
    k = max((row.shape[1] for row in rows), default=2)
    return torch.cat([F.pad(row, (0, k - row.shape[1])) for row in rows]) if rows else torch.zeros(0, k)


def read_reference(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The stored tables and metadata, or nothing when there is no readable file of this format."""
    from safetensors import safe_open

    if not path.is_file():
        return {}, {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tables = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # SafetensorError or OSError: a truncated or foreign file is recomputed
        logger.warning(f"{path} is unreadable ({error}): the reference log-probs are computed afresh")
        return {}, {}
    return (tables, metadata) if metadata.get("format") == FORMAT else ({}, {})


def write_reference(path: Path, tables: dict[str, torch.Tensor], fingerprints: dict[str, str]) -> None:
    """Written whole, then renamed: an interrupted write leaves the earlier file or none."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(
        {split: table.contiguous() for split, table in tables.items()}, str(partial), {"format": FORMAT, **fingerprints}
    )
    os.replace(partial, path)


def reference_tables(trainer, engine, run_facts: dict) -> dict[str, torch.Tensor]:
    """Each split's [N, K] table: read back where its fingerprint matches, else computed (and stored)."""
    config = trainer.args
    path = Path(config.output_dir) / REFERENCE_FILE
    splits = {"train": trainer.train_dataset, "eval": trainer.eval_dataset}
    tables, fingerprints, computed = {}, {}, False
    with config.main_process_first(desc="DPO reference log-probs"):  # others read what process 0 wrote
        stored, metadata = read_reference(path)
        for split, dataset in splits.items():
            if dataset is None:
                continue
            fingerprints[split] = split_fingerprint(dataset, run_facts)
            table = stored.get(split)
            if metadata.get(split) == fingerprints[split] and table is not None and len(table) == len(dataset):
                logger.info(f"reference log-probs of {len(dataset)} {split} pairs read from {path}")
                tables[split] = table
                continue
            was = " (the stored ones are for other pairs, options or another model)" if split in metadata else ""
            logger.info(f"computing the starting model's log-probs of {len(dataset)} {split} pairs{was}")
            tables[split] = compute_reference_logps(
                engine,
                dataset,
                trainer.data_collator,
                config.per_device_eval_batch_size,
                trainer.accelerator.autocast(),
                config.dataloader_num_workers,
            )
            computed = True
        if computed and config.process_index == 0:
            write_reference(path, tables, fingerprints)
    return tables


class WithReference(Dataset):
    """A dataset whose items also carry their row of a reference table (REFERENCE_KEY); everything
    else (lengths, counts, examples) is the wrapped dataset's."""

    def __init__(self, dataset: Dataset, table: torch.Tensor):
        self.dataset, self.table = dataset, table

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], REFERENCE_KEY: self.table[index]}

    def __getattr__(self, name: str):
        if name in ("dataset", "table"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


@dataclass
class ReferenceCollator:
    """The run's collator, plus the batch's reference rows [B, K] under REFERENCE_KEY (K the batch's
    candidate slots: a split's table is as wide as its longest K-best row)."""

    collator: Callable

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collator(items)
        rows = torch.stack([item[REFERENCE_KEY] for item in items])  # [B, K of the split]
        slots = batch["candidate_input_ids"].shape[1] if "candidate_input_ids" in batch else 2
        batch[REFERENCE_KEY] = F.pad(rows, (0, max(slots - rows.shape[1], 0)))[:, :slots]
        return batch


def attach_reference(trainer, engine, run_facts: dict) -> None:
    """Before `trainer.train()`: the reference tables computed or read back, and joined to the
    trainer's datasets and collator so each batch carries its rows."""
    tables = reference_tables(trainer, engine, run_facts)
    trainer.train_dataset = WithReference(trainer.train_dataset, tables["train"])
    if trainer.eval_dataset is not None:
        trainer.eval_dataset = WithReference(trainer.eval_dataset, tables["eval"])
    trainer.data_collator = ReferenceCollator(trainer.data_collator)
