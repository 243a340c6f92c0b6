"""Objective names -> classes, and the one function that builds an objective from a name and weights."""

from __future__ import annotations

from dataclasses import fields

from rlhf_asr.errors import UserInputError
from rlhf_asr.loss.objectives.base import Objective
from rlhf_asr.loss.objectives.dpo import DPO
from rlhf_asr.loss.objectives.mwer import MWER
from rlhf_asr.loss.objectives.orpo import ORPO
from rlhf_asr.loss.objectives.sft import SFT
from rlhf_asr.loss.objectives.simpo import SimPO

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (ORPO, SFT, DPO, SimPO, MWER)}


def build_objective(name: str, **weights: float | bool) -> Objective:
    """The objective `name` with `weights` (the rest at their defaults); a user's mistake, an unknown
    name, weight or value, is refused with one line (UserInputError)."""
    if name not in OBJECTIVES:
        raise UserInputError(f"unknown objective {name!r}: choose one of {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(weights) - set(known))
    if unknown:
        takes = f"its weights are {', '.join(known)}" if known else "it takes none"
        raise UserInputError(f"objective {name} has no weight {', '.join(unknown)}: {takes}")
    return cls(**weights)
