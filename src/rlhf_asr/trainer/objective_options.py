"""`--loss` and its weights: the objective a training run minimises (loss/objectives/), built from
the training config, and the refusals that belong to it.

The weights are options named as the objectives name their fields (`--beta` is DPO's and SimPO's
`beta`), so `build_objective(loss, **weights)` takes them as they are; one left unset (None) is
the objective's own default. A weight that the chosen objective does not read is refused with one
line, never ignored: `--loss dpo --gamma 0.5` would train something other than what was asked.
`--alpha` (0.1, ORPO's) and `--reference_in_list` (True, MWER's) have a value by default, so they
count as set only when changed.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields

from rlhf_asr.errors import UserInputError
from rlhf_asr.loss.objectives import OBJECTIVES, Objective, build_objective
from rlhf_asr.model.card import weight_text

DEFAULT_LOSS = "orpo"  # until the results study compares the objectives
LOSS_CHOICES = tuple(OBJECTIVES)
# The training config's fields that are objective weights; those with a value by default.
WEIGHTS = ("alpha", "beta", "gamma", "label_smoothing", "rpo_alpha", "cpo_alpha", "ce_weight", "reference_in_list")
WEIGHT_DEFAULTS = {"alpha": 0.1, "reference_in_list": True}
# Registered objectives this trainer cannot feed yet, and why (one line each); none at present.
NOT_WIRED: dict[str, str] = {}
LOSS_SUMMARIES = {
    "orpo": "NLL of the chosen + alpha * odds-ratio term (no reference model)",
    "sft": "NLL of the chosen alone (the rejected never decoded)",
    "dpo": "against the starting model's log-probs, precomputed once (TRL's precompute_ref_log_probs)",
    "simpo": "length-normalised reward margin, no reference model",
    "mwer": "expected word errors over a K-best list + ce_weight * NLL of the reference (K-best rows: "
    "make-pairs --nbest)",
}


# Weights that are switches (MWER's reference_in_list), not numbers: their defaults are booleans.
BOOLEAN_WEIGHTS = {
    field.name for cls in OBJECTIVES.values() for field in fields(cls) if isinstance(field.default, bool)
}


def _summary(name: str) -> str:
    """An objective in one phrase: ours, else the first line of its class's docstring."""
    return LOSS_SUMMARIES.get(name) or (OBJECTIVES[name].__doc__ or name).strip().splitlines()[0]


def loss_help() -> str:
    """--loss's help: each objective in one phrase, from the registry."""
    told = [f"{name}: {'not yet wired' if name in NOT_WIRED else _summary(name)}" for name in LOSS_CHOICES]
    default = "The default stays orpo until the results study compares them."
    return f"The objective (loss/objectives/). {'; '.join(told)}. {default}"


def weight_help(weight: str, extra: str = "") -> str:
    """A weight option's help: what each objective reading it says of it, with its default there
    (objectives saying the same, as DPO and SimPO of `label_smoothing`, named together)."""
    said: dict[str, list[str]] = {}
    for name, cls in OBJECTIVES.items():
        for field in fields(cls):
            if field.name == weight and name not in NOT_WIRED:
                default = "" if field.default is MISSING else f" Default {weight_text(field.default)}."
                said.setdefault(f"{field.metadata.get('help', '')}{default}", []).append(name)
    parts = [f"--loss {' or '.join(names)}: {text}" for text, names in said.items()]
    return " ".join(
        filter(None, [*parts, extra, "Unset: the objective's default; refused with a --loss that does not read it."])
    )


def weights_of(objective: Objective) -> dict[str, float]:
    """The objective's weights by name, as it trains with them (its defaults filled in)."""
    return {field.name: getattr(objective, field.name) for field in fields(objective)}


def training_objective(config) -> Objective:
    """The objective of a training config (`loss` and the weight fields); a wrong name, a weight the
    objective does not read, or a value out of its range: one UserInputError line."""
    name = config.loss
    if name not in OBJECTIVES:
        raise UserInputError(f"--loss {name}: choose one of {', '.join(LOSS_CHOICES)}")
    if name in NOT_WIRED:
        raise UserInputError(NOT_WIRED[name])
    reads = [field.name for field in fields(OBJECTIVES[name])]
    weights = {}
    for weight in WEIGHTS:
        value = getattr(config, weight)
        if value is None:
            continue
        if weight in BOOLEAN_WEIGHTS:
            if not isinstance(value, bool):
                raise UserInputError(f"--{weight} must be True or False, got {value}")
        elif not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise UserInputError(f"--{weight} must be a finite number, got {value}")
        if weight in reads:
            weights[weight] = value
        elif value != WEIGHT_DEFAULTS.get(weight):
            takes = f"its weights are {', '.join('--' + r for r in reads)}" if reads else "it has no weights"
            readers = [other for other, cls in OBJECTIVES.items() if weight in {f.name for f in fields(cls)}]
            raise UserInputError(
                f"--{weight} {weight_text(value)}: --loss {name} does not read it ({takes}); leave it out, or use "
                f"--loss {' or '.join(r for r in readers if r not in NOT_WIRED)}"
            )
    return build_objective(name, **weights)


def check_objective_run(config, augmented: bool, streamed: bool) -> Objective:
    """The objective, and the run options it cannot train with, refused before any loading.

    augmented: --augment_config_path is given; streamed: training rows are read while training.
    """
    objective = training_objective(config)
    loss = f"--loss {objective.name}"
    if not objective.uses_chosen_span and config.rejected_scope == "diverging":
        raise UserInputError(
            f"{loss} compares whole transcripts (summed log-probs: the shared prefix cancels): not with "
            "--rejected_scope diverging; use --rejected_scope all"
        )
    if objective.needs_reference and augmented:
        raise UserInputError(
            f"{loss} computes the starting model's log-probs of each pair once, before training: not with "
            "--augment_config_path (augmented audio differs at every epoch)"
        )
    if objective.needs_word_errors and streamed:
        raise UserInputError(
            f"{loss} trains on K-best rows (make-pairs --nbest), which a JSON-lines manifest holds: not with "
            "--streaming training of a dataset; leave --streaming out"
        )
    if objective.needs_reference and streamed:
        raise UserInputError(
            f"{loss} computes the starting model's log-probs of every pair before training: not with --streaming "
            "training (rows are read while training); leave --streaming out"
        )
    return objective
