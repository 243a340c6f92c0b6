"""Several decoder sequences of one audio side by side on one time axis: block masks, positions, block lengths.

The packed engine decodes K transcripts of the same audio in one decoder pass by laying their
blocks end to end. Each block restarts its positions at 0 and attends causally within itself
only, so every block computes what it would alone, while the audio's cross-attention keys and
values are computed once for all K.

Cost of packing (why K blocks in one pass are acceptable): the decoder runs on T = sum of the
block lengths positions, each block packed to its own length (`candidate_blocks` trims a
candidate slot to the batch's last scored position in it, so short candidates do not pay for the
longest one). Everything per position (embeddings, MLPs, LoRA, cross-attention over the 1500
audio frames, the chunked label log-probs) costs the same as K separate passes. Only the decoder
self-attention grows: its scores are [B, heads, T, T], of which the K diagonal blocks are used,
so at most K times the self-attention of K separate passes. For Whisper's transcripts (tens of
tokens, at most 448) next to 1500 audio frames that is small: with K = 8 blocks of 100 tokens,
T = 800 and one layer's scores are 0.64 M per head and row against 1.2 M for the cross-attention.
Eager attention keeps those scores for the backward pass (B * heads * T^2 floats per layer);
SDPA's memory-efficient kernel takes the boolean mask and keeps none. Positions restart per
block, so T may pass the decoder's 448-position table: each block alone must fit it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlhf_asr.loss.logps import IGNORE_INDEX


def block_causal_mask(
    lengths: Sequence[int], batch: int, device, additive_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """[B, 1, T, T] mask, T = sum(lengths): causal within each block, nothing across blocks.

    Boolean (True = may attend) for SDPA; additive in `additive_dtype` for eager attention, which
    adds the mask to the scores. Padding needs no mask: each block is right-padded, so real tokens
    never see their pads, and pads are never scored. Every row keeps its diagonal, so no softmax
    row is all masked (no NaN), even in a block of padding only.
    """
    total = sum(lengths)
    block = torch.tensor([k for k, length in enumerate(lengths) for _ in range(length)], device=device)  # [T]
    causal = torch.ones(total, total, dtype=torch.bool, device=device).tril()
    mask = causal & (block[:, None] == block[None, :])  # [T, T]
    if additive_dtype is not None:
        mask = torch.zeros(total, total, dtype=additive_dtype, device=device).masked_fill(
            ~mask, torch.finfo(additive_dtype).min
        )
    return mask.expand(batch, 1, total, total)


def packed_attention_mask(
    chosen_len: int, rejected_len: int, batch: int, device, additive_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """[B, 1, Lc+Lr, Lc+Lr]: the pair's two blocks, chosen then rejected (`block_causal_mask` with K = 2)."""
    return block_causal_mask((chosen_len, rejected_len), batch, device, additive_dtype)


def block_positions(lengths: Sequence[int], batch: int, device) -> torch.Tensor:
    """[B, T] decoder positions restarting at 0 in each block, as each sequence has alone."""
    return torch.cat([torch.arange(length, device=device) for length in lengths]).expand(batch, -1)


def candidate_blocks(input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Splits [B, K, L] candidates into K blocks ([B, L_k] ids, [B, L_k] labels), each as long as it needs.

    L_k is one past the last position any row scores in slot k (at least 1, so a slot absent from
    the whole batch is a one-position block scoring nothing). What is cut off is padding after the
    last scored label: the decoder is causal, so no scored position ever reads it, and dropping it
    changes no log-prob. This keeps a K-best whose candidates differ in length from paying K times
    the longest.
    """
    if input_ids.dim() != 3 or input_ids.shape != labels.shape:
        raise ValueError(
            f"candidate input_ids and labels must both be [B, K, L], not {tuple(input_ids.shape)} "
            f"and {tuple(labels.shape)}"
        )
    scored = (labels != IGNORE_INDEX).any(dim=0)  # [K, L]: any row scores slot k at position t
    position = torch.arange(1, labels.shape[2] + 1, device=labels.device)  # [L]
    lengths = (scored * position).amax(dim=1).clamp(min=1).tolist()  # [K], one host sync per batch
    ids = [input_ids[:, k, :length] for k, length in enumerate(lengths)]
    label_blocks = [labels[:, k, :length] for k, length in enumerate(lengths)]
    return ids, label_blocks
