"""Trainer callbacks: AdaLoRA's rank reallocation, the training-curve plot, and metrics in the log."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

logger = logging.getLogger(__name__)


class LogMetricsCallback(TrainerCallback):
    """Each of the Trainer's logs (loss, rewards/*, log_odds_ratio, eval_wer, ...) as one log line on stderr.

    Trainer's own Progress/PrinterCallback print these dicts on stdout, which is for a command's products."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            shown = (
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items() if k != "total_flos"
            )
            logger.info("step %d: %s", state.global_step, " ".join(shown))


class _BarOnlyProgressCallback(ProgressCallback):
    """Trainer's progress bar without its copy of each log (LogMetricsCallback has it)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def log_metrics_instead_of_printing(trainer) -> None:
    """Swaps the Trainer's printing callbacks for LogMetricsCallback, keeping the progress bar."""
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_BarOnlyProgressCallback)
    trainer.add_callback(LogMetricsCallback)


class AdaLoraCallback(TrainerCallback):
    """Calls AdaLoRA's `update_and_allocate` after every optimizer step.

    AdaLoRA only reallocates rank when this is called, with the gradients still present (after
    `optimizer.step()`, before `zero_grad()`); the stock Trainer never calls it, so without this
    callback AdaLoRA trains as a plain fixed-rank LoRA. Steps the fp16 gradient scaler skipped
    are left out of the importance averages.
    """

    def __init__(self, peft_model):
        self.peft_model = peft_model
        self.rank_history: list[tuple[int, int]] = []  # (step, total rank budget in use)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        step = state.global_step
        if not (_step_was_skipped(optimizer) and self._reads_gradients(step)):
            self.peft_model.base_model.update_and_allocate(step)
        self.rank_history.append((step, total_adalora_rank(self.peft_model)))

    def _reads_gradients(self, step: int) -> bool:
        """Whether `update_and_allocate(step)` feeds gradients into the importance averages.

        Before step total - tfinal it does (|w * grad|, smoothed over the run). From then on it only
        fixes the final budget and re-applies the mask, which a skipped step must not miss.
        """
        config = self.peft_model.peft_config[self.peft_model.base_model.trainable_adapter_name]
        return step < config.total_step - config.tfinal


def _step_was_skipped(optimizer) -> bool:
    """True when the fp16 gradient scaler skipped this step (inf/NaN gradients), as Accelerate reports it.

    Such gradients would turn AdaLoRA's importance averages into NaN for the rest of the run; the
    Trainer itself checks the same flag before stepping the learning-rate schedule.
    """
    return bool(getattr(optimizer, "step_was_skipped", False))


def total_adalora_rank(peft_model) -> int:
    """Number of singular values AdaLoRA keeps (nonzero entries of every lora_E)."""
    total = 0
    for name, param in peft_model.named_parameters():
        if "lora_E" in name:
            total += int((param.detach() != 0).sum())
    return total


class CurvePlotCallback(TrainerCallback):
    """Writes `training_curves.png` (loss, NLL, odds ratio, reward accuracy) at the end of training."""

    PANELS = (
        ("loss", "loss"),
        ("nll_loss", "NLL (chosen)"),
        ("log_odds_chosen", "log odds ratio"),
        ("rewards/accuracies", "reward accuracy"),
    )

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.log_history:
            plot_training_curves(state.log_history, Path(args.output_dir) / "training_curves.png")


def plot_training_curves(log_history: list[dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = CurvePlotCallback.PANELS
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    drawn = False
    for ax, (key, title) in zip(axes, panels):
        for prefix, style in (("", "-"), ("eval_", "o--")):
            points = [(row["step"], row[prefix + key]) for row in log_history if prefix + key in row]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, label="eval" if prefix else "train")
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
