"""Log-probabilities of label tokens, with and without materialising the vocabulary logits.

Whisper shifts labels inside the model (decoder input = [sot] + labels[:-1]), so the logits at
position t already score label t: nothing here shifts again. Label -100 marks a position that is
not scored (padding, or a prefix token when the prompt loss is disabled).
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def logits_token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token log p(label) from full logits (the plain way).

    Args:
        logits: [B, L, V].
        labels: [B, L], IGNORE_INDEX where not scored.
    Returns:
        [B, L] float32 log-probs, 0 where not scored.
    """
    mask = labels != IGNORE_INDEX
    safe_labels = labels.masked_fill(~mask, 0)
    logps = torch.log_softmax(logits.float(), dim=-1)
    picked = torch.gather(logps, 2, safe_labels.unsqueeze(-1)).squeeze(-1)
    return picked * mask


class _ChunkedLabelLogps(torch.autograd.Function):
    """log p(label) = h.w_label - logsumexp(h W^T), computed a chunk of tokens at a time.

    Only one chunk's [chunk, V] logits exist at once. The gradient of log p(label_t) with respect
    to the logits is (onehot - softmax), so d/dh = (onehot - softmax) W, a [d]-vector per token:
    when the output matrix is frozen (LoRA), that vector is computed in the forward pass and the
    backward pass is a scale, with no second pass over the vocabulary. When the matrix is trained
    (full fine-tuning) its gradient needs the softmax again, which the backward pass recomputes
    chunk by chunk.
    """

    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk_size, track_grad):  # autograd signature
        # Autocast would silently run the gradient products below in half precision.
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return _ChunkedLabelLogps._forward(ctx, hidden, weight, labels, chunk_size, track_grad)

    @staticmethod
    def _forward(ctx, hidden, weight, labels, chunk_size, track_grad):
        flat_hidden = hidden.reshape(-1, hidden.shape[-1])
        flat_labels = labels.reshape(-1)
        scored = flat_labels != IGNORE_INDEX
        safe_labels = flat_labels.masked_fill(~scored, 0)
        need_hidden_grad = track_grad and ctx.needs_input_grad[0]
        out = torch.empty(flat_labels.shape, dtype=torch.float32, device=hidden.device)
        hidden_grad = torch.empty_like(flat_hidden, dtype=torch.float32) if need_hidden_grad else None
        w = weight.to(flat_hidden.dtype)
        for start in range(0, flat_labels.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            logits = (flat_hidden[rows] @ w.T).float()  # the only [chunk, V] buffer
            label_logit = logits.gather(1, safe_labels[rows, None]).squeeze(1)
            # A hand-written logsumexp, in place: torch.logsumexp keeps more [chunk, V] temporaries.
            peak = logits.amax(dim=-1)
            probs = logits.sub_(peak[:, None]).exp_()
            total = probs.sum(dim=-1)
            out[rows] = label_logit - peak - total.log()
            if need_hidden_grad:
                probs.div_(total[:, None])
                probs[torch.arange(probs.shape[0], device=probs.device), safe_labels[rows]] -= 1.0
                hidden_grad[rows] = -(probs @ w.float())
            del logits, probs
        out = out * scored
        ctx.chunk_size = chunk_size
        ctx.hidden_shape = hidden.shape
        ctx.save_for_backward(flat_hidden, weight, safe_labels, scored, hidden_grad)
        return out.view(labels.shape)

    @staticmethod
    def backward(ctx, grad_out):
        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            return _ChunkedLabelLogps._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        flat_hidden, weight, safe_labels, scored, hidden_grad = ctx.saved_tensors
        g = grad_out.reshape(-1).float() * scored
        grad_hidden = grad_weight = None
        if hidden_grad is not None:
            grad_hidden = (hidden_grad * g[:, None]).to(flat_hidden.dtype).view(ctx.hidden_shape)
        if ctx.needs_input_grad[1]:
            w = weight.to(flat_hidden.dtype)
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            for start in range(0, g.shape[0], ctx.chunk_size):
                rows = slice(start, start + ctx.chunk_size)
                h = flat_hidden[rows].float()
                probs = torch.softmax((flat_hidden[rows] @ w.T).float(), dim=-1)
                probs[torch.arange(probs.shape[0], device=probs.device), safe_labels[rows]] -= 1.0
                grad_weight -= (probs * g[rows, None]).T @ h
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


def chunked_token_logps(
    hidden: torch.Tensor, output_weight: torch.Tensor, labels: torch.Tensor, chunk_size: int = 256
) -> torch.Tensor:
    """Per-token log p(label) from decoder hidden states without the full [B, L, V] logits.

    Args:
        hidden: [B, L, d] final decoder hidden states (after the last layer norm).
        output_weight: [V, d] output projection (Whisper ties it to the token embedding).
        labels: [B, L], IGNORE_INDEX where not scored.
        chunk_size: tokens per chunk; peak extra memory is about chunk_size * V floats.
    Returns:
        [B, L] float32 log-probs, 0 where not scored. Gradients are exact.
    """
    # Inside forward() grad mode is always off, so whether a backward will follow is read here:
    # evaluation must not pay for the per-token gradient vectors.
    return _ChunkedLabelLogps.apply(hidden, output_weight, labels, chunk_size, torch.is_grad_enabled())


def sequence_logps(token_logps: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the token log-probs `labels` scores and number of those tokens per sequence: ([B], [B]).

    `labels` may score fewer positions than the labels `token_logps` was computed with (the odds
    span of `--rejected_scope diverging` within the whole chosen): the sum is over its own.
    """
    scored = labels != IGNORE_INDEX
    return (token_logps * scored).sum(-1), scored.sum(-1)
