"""One run of the objectives study: a `train --loss` objective, with changes to its weights or
learning rate written after a colon (`--objectives dpo dpo:rpo_alpha=1 dpo:learning_rate=1e-4`).

The plain name trains the objective at the trainer's defaults and the study's shared learning rate;
a spec trains what it says and is a variant of its own in the raw file and the report, so "what was
tried" is the list of specs. A change the objective does not read, or a value out of its range, is
refused with one line before anything is loaded, as `train` refuses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

from rlhf_asr.errors import UserInputError

LEARNING_RATE = "learning_rate"  # the one training option a spec may change besides the weights
SAMPLE = "dpo:rpo_alpha=1"  # what the refusals show


@dataclass(frozen=True)
class ObjectiveSpec:
    """A study run's objective as written, and what it changes."""

    text: str  # as written: the run's variant name in the raw file and the report
    loss: str  # the `train --loss` objective
    weights: tuple[tuple[str, float | bool], ...] = ()  # objective weights changed from the trainer's defaults
    learning_rate: float | None = None  # None: the study's shared learning rate

    @property
    def folder(self) -> str:
        """A file-system-safe name for its run folders (`dpo:rpo_alpha=1` -> `dpo_rpo_alpha1`)."""
        return self.text.replace(":", "_").replace(",", "_").replace("=", "")


def spec_changes(spec: str) -> tuple[str, bool, list[tuple[str, bool, str]]]:
    """(loss, whether a colon follows it, [(name, whether `=` follows it, value text)]) of a spec as
    written, unchecked: what `parse_spec` checks and the report names runs by (no torch import)."""
    loss, colon, changes = spec.partition(":")
    written = [change.partition("=") for change in filter(None, changes.split(","))]
    return loss, bool(colon), [(name, bool(equals), text) for name, equals, text in written]


def _value(name: str, text: str, spec: str) -> float | bool:
    from rlhf_asr.trainer.objective_options import BOOLEAN_WEIGHTS

    if name in BOOLEAN_WEIGHTS:
        if text.lower() not in ("true", "false"):
            raise UserInputError(f"--objectives {spec}: {name} must be true or false, not {text!r}")
        return text.lower() == "true"
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(f"--objectives {spec}: {name} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise UserInputError(f"--objectives {spec}: {name} must be a finite number, not {text!r}")
    return value


def parse_spec(spec: str, losses: tuple[str, ...]) -> ObjectiveSpec:
    """`loss` or `loss:name=value[,name=value]`, with `loss` one of `losses`; anything else is one
    UserInputError line naming the spec and what it may say."""
    from rlhf_asr.trainer.objective_options import WEIGHTS, training_objective  # imports torch: not at module level

    loss, colon, changes = spec_changes(spec)
    if loss not in losses:
        raise UserInputError(f"--objectives {spec}: choose from {', '.join(losses)} (changes after a colon: {SAMPLE})")
    values: dict[str, float | bool] = {}
    for name, equals, text in changes:
        if not equals or name not in (*WEIGHTS, LEARNING_RATE):
            change = f"{name}={text}" if equals else name
            raise UserInputError(
                f"--objectives {spec}: {change!r} is not name=value with a weight "
                f"({', '.join(WEIGHTS)}) or {LEARNING_RATE}, as in {SAMPLE}"
            )
        if name in values:
            raise UserInputError(f"--objectives {spec}: {name} is given twice")
        values[name] = _value(name, text, spec)
    if colon and not values:
        raise UserInputError(f"--objectives {spec}: nothing after the colon; write {loss} or, say, {SAMPLE}")
    learning_rate = values.pop(LEARNING_RATE, None)
    if learning_rate is not None and learning_rate <= 0:
        raise UserInputError(f"--objectives {spec}: learning_rate must be > 0, not {learning_rate}")
    config = SimpleNamespace(loss=loss, **({weight: None for weight in WEIGHTS} | values))
    try:
        training_objective(config)  # the trainer's own refusals: a weight the loss does not read, a bad range
    except UserInputError as error:
        raise UserInputError(f"--objectives {spec}: {error}") from None
    return ObjectiveSpec(spec, loss, tuple(values.items()), learning_rate)
