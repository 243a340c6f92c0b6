"""Batches of candidate scores for the objective tests (no model needed), and TRL's trainers' loss
code run on them through stand-ins for the parts a trainer would build (model, accelerator)."""

from __future__ import annotations

import functools
from collections import defaultdict
from types import SimpleNamespace

import torch

from rlhf_asr.loss.logps import IGNORE_INDEX
from rlhf_asr.loss.objectives import CandidateScores

ALL_INPUTS = ("reference_logps", "word_errors")


def ragged_scores(seed: int = 0, batch: int = 4, k: int = 4, dtype=torch.float32, junk: float = float("nan")):
    """A K-best batch with every optional input, absent slots holding `junk` (NaN: must not matter).

    Row 0 has all K candidates, row 1 has its last two slots absent, row 2 only its chosen, row 3
    its middle slot absent. Returns (scores, leaves): leaves are the tensors to read gradients from.
    """
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, 12, (batch, k), generator=gen)
    tokens[1, k - 2 :] = 0
    tokens[2, 1:] = 0
    tokens[3, 1] = 0
    absent = tokens == 0
    logps = -(torch.rand(batch, k, generator=gen) * 2 + 0.05) * tokens  # mean per-token -0.05 .. -2.05
    reference = logps + torch.randn(batch, k, generator=gen)
    errors = torch.randint(0, 5, (batch, k), generator=gen).float()
    errors[:, 0] = 0.0  # candidate 0 is the reference
    span_tokens = torch.minimum(tokens[:, :1], torch.randint(1, 6, (batch, k - 1), generator=gen))
    # the span's mean differs from the whole chosen's: the shared prefix is usually the easier part
    span_logps = logps[:, :1] * span_tokens / tokens[:, :1] * (0.5 + torch.rand(batch, k - 1, generator=gen))
    leaves = {}
    for name, value, holes in (
        ("logps", logps, absent),
        ("reference_logps", reference, absent),
        ("word_errors", errors, absent),
        ("chosen_span_logps", span_logps, absent[:, 1:]),
    ):
        leaves[name] = value.masked_fill(holes, junk).to(dtype).requires_grad_(name != "word_errors")
    span_tokens = span_tokens.masked_fill(absent[:, 1:], 0)
    scores = CandidateScores(tokens=tokens, chosen_span_tokens=span_tokens, **leaves)
    return scores, leaves


def logits_batch(seed: int, rows: int = 4, length: int = 7, vocab: int = 50):
    """Random decoder logits [rows, L, V] (a leaf) and labels [rows, L], some positions not scored."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, length, vocab, generator=gen) * 3
    labels = torch.randint(0, vocab, (rows, length), generator=gen)
    labels[0, 4:] = IGNORE_INDEX
    labels[-1, :2] = IGNORE_INDEX
    return logits.requires_grad_(), labels


def without(scores: CandidateScores, *names: str) -> CandidateScores:
    """The same scores with the named optional inputs left out (`chosen_span` drops both span fields)."""
    values = {f: getattr(scores, f) for f in scores.__dataclass_fields__}
    for name in names:
        for field_name in [f for f in values if f.startswith(name)]:
            values[field_name] = None
    return CandidateScores(**values)


def inputs_for(objective, scores: CandidateScores) -> CandidateScores:
    """`scores` with only what `objective` may read (span fields dropped where it compares whole candidates)."""
    return scores if objective.uses_chosen_span else without(scores, "chosen_span")


# ---- TRL's own loss code, run with stand-ins for a trainer's model and accelerator ----

_ACCELERATOR = SimpleNamespace(device="cpu", gather=lambda x: x, gather_for_metrics=lambda x: x)


def trl_dpo(chosen_token_logps, rejected_token_logps, chosen_mask, rejected_mask, ref_chosen, ref_rejected, **config):
    """(loss, metrics) of TRL's `DPOTrainer._compute_loss` on given per-token log-probs [B, T] (0
    where the mask is 0) and precomputed reference sums [B]; `config`: beta, loss_types, ..."""
    from trl import DPOTrainer

    per_token = torch.cat([chosen_token_logps, rejected_token_logps])  # [2B, T]
    mask = torch.cat([chosen_mask, rejected_mask]).long()  # [2B, T]
    rows, length = per_token.shape
    zeros = torch.zeros(rows, length)
    outputs = SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=_ACCELERATOR,
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,  # reference sums come with the batch, as TRL's precompute option
        f_divergence_type="reverse_kl",  # standard DPO
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        **{"loss_types": ["sigmoid"], "loss_weights": [1.0], "label_smoothing": 0.0, **config},
    )
    inputs = {
        # TRL scores positions 1.. of the completion mask (the next-token shift); position 0 is a prompt token
        "completion_mask": torch.cat([torch.zeros(rows, 1, dtype=torch.long), mask], dim=1),
        "input_ids": torch.zeros(rows, length + 1, dtype=torch.long),
        "attention_mask": torch.ones(rows, length + 1, dtype=torch.long),
        "ref_chosen_logps": ref_chosen,
        "ref_rejected_logps": ref_rejected,
    }
    loss = DPOTrainer._compute_loss(trainer, lambda **_: outputs, inputs, return_outputs=False)
    return loss, {key: values[-1] for key, values in trainer._metrics["train"].items()}


def trl_batch_metrics(trainer_cls, loss_fn: str, forward: tuple, **config):
    """(loss, metrics) of TRL's `get_batch_loss_metrics` (ORPO's or CPO's) with `concatenated_forward`
    returning `forward` = (chosen_logps, rejected_logps, chosen_logits, rejected_logits, nll_loss)."""
    trainer = SimpleNamespace(accelerator=_ACCELERATOR, aux_loss_enabled=False, alpha=0.0, **config)
    trainer.concatenated_forward = lambda model, batch: forward
    setattr(trainer, loss_fn, functools.partial(getattr(trainer_cls, loss_fn), trainer))
    return trainer_cls.get_batch_loss_metrics(trainer, None, {})
