"""Training objectives behind one plug-in point: ORPO, SFT, DPO, SimPO and MWER over a K-best.

Each reads `CandidateScores` (K candidates per audio, candidate 0 the chosen) and returns an
`ObjectiveOutput` (loss and metrics); `build_objective(name, **weights)` picks one by name.
A package rather than modules in loss/: the five objectives share an interface (base.py) and a
pair reduction (pairwise.py), and loss/orpo.py (the trainer's ORPO maths, which the ORPO objective
calls) keeps its name.
"""

from rlhf_asr.loss.objectives.base import CandidateScores, Objective, ObjectiveOutput
from rlhf_asr.loss.objectives.dpo import DPO
from rlhf_asr.loss.objectives.mwer import MWER
from rlhf_asr.loss.objectives.orpo import ORPO
from rlhf_asr.loss.objectives.registry import OBJECTIVES, build_objective
from rlhf_asr.loss.objectives.sft import SFT
from rlhf_asr.loss.objectives.simpo import SimPO

__all__ = [
    "DPO",
    "MWER",
    "OBJECTIVES",
    "ORPO",
    "SFT",
    "CandidateScores",
    "Objective",
    "ObjectiveOutput",
    "SimPO",
    "build_objective",
]
