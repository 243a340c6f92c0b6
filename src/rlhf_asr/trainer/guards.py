"""Stops a training run whose numbers stop being numbers, and warns once when it diverges.

The Trainer does neither: a NaN loss is filtered out of the log (`logging_nan_inf_filter`, so
the log shows a harmless-looking loss), the NaN gradient is applied, and the run ends with exit
0 and an adapter of NaNs that merges and evaluates. Here the gradients are checked before each
optimizer step (so no non-finite value reaches the weights, or a checkpoint), the trainable
weights after it (which also covers fp16, where the gradient scaler may legitimately see inf),
and the logs for divergence.
"""

from __future__ import annotations

import logging
import math

import torch
from transformers import TrainerCallback

from rlhf_asr.errors import UserInputError

logger = logging.getLogger(__name__)

DIVERGED_LOSS_FACTOR = 3.0  # loss above 3x the first logged loss
DIVERGED_GRAD_NORM_FACTOR = 1e3  # gradient norm above 1000x the first logged one


class NonFiniteTrainingError(UserInputError):
    """Training produced NaN/inf; the remedy (learning rate, data, precision) is the user's."""


def largest_magnitude(tensors: list[torch.Tensor]) -> float:
    """Max |x| over all tensors: NaN or inf exactly when an entry is; no copies, one device sync.

    The max norm, unlike the L2 norm, cannot overflow for finite values (in fp16 or fp32).
    """
    if not tensors:
        return 0.0
    norms = torch._foreach_norm([tensor.detach() for tensor in tensors], ord=math.inf)
    return float(torch.stack([norm.float().to(norms[0].device) for norm in norms]).max())


class FiniteTrainingGuard(TrainerCallback):
    """Raises NonFiniteTrainingError on a non-finite gradient, weight or logged loss; warns on divergence."""

    def __init__(self, watched: str = "loss") -> None:
        """`watched`: the logged value whose growth past 3x its first means divergence; the loss, or
        where the loss's size says nothing (MWER's mean-subtracted risk starts near 0) its `nll_loss`."""
        self.watched = watched
        self.first_loss: float | None = None
        self.first_grad_norm: float | None = None
        self.warned = False

    @staticmethod
    def _trainable(model) -> list[torch.Tensor]:
        return [param for param in model.parameters() if param.requires_grad]

    @staticmethod
    def _stop(state, what: str) -> None:
        raise NonFiniteTrainingError(
            f"training stopped at step {state.global_step + 1}: {what} is not finite (NaN/inf); nothing of this "
            "step was saved. Lower --learning_rate, check the audio for NaN samples, or try --bf16 instead of fp16"
        )

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        # With fp16 the gradient scaler sees (and skips) inf gradients while it calibrates: not an error.
        if model is None or args.fp16:
            return
        grads = [param.grad for param in self._trainable(model) if param.grad is not None]
        if not math.isfinite(largest_magnitude(grads)):
            self._stop(state, "the gradient")

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        if model is not None and not math.isfinite(largest_magnitude(self._trainable(model))):
            self._stop(state, "a trainable weight after the optimizer step")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        loss, grad_norm = logs.get("loss"), logs.get("grad_norm")
        for name, value in (("the loss", loss), ("the gradient norm", grad_norm)):
            if isinstance(value, (int, float)) and not math.isfinite(value):
                self._stop(state, name)
        loss = logs.get(self.watched)
        if isinstance(loss, (int, float)) and self.first_loss is None:
            self.first_loss = abs(loss)
        if isinstance(grad_norm, (int, float)) and self.first_grad_norm is None:
            self.first_grad_norm = grad_norm
        if self.warned:
            return
        reason = None
        if isinstance(loss, (int, float)) and self.first_loss and loss > DIVERGED_LOSS_FACTOR * self.first_loss:
            factor = f"{DIVERGED_LOSS_FACTOR:g}x"
            reason = f"{self.watched} {loss:.4g} is over {factor} its first value {self.first_loss:.4g}"
        elif (
            isinstance(grad_norm, (int, float))
            and self.first_grad_norm
            and grad_norm > DIVERGED_GRAD_NORM_FACTOR * self.first_grad_norm
        ):
            reason = (
                f"gradient norm {grad_norm:.4g} is over {DIVERGED_GRAD_NORM_FACTOR:g}x its first value "
                f"{self.first_grad_norm:.4g}"
            )
        if reason:
            self.warned = True
            logger.warning(
                f"training is diverging at step {state.global_step}: {reason}; consider a lower --learning_rate"
            )
