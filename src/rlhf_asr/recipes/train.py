"""Recipe: `rlhf-asr train` (and `python finetune.py`): one training run from parsed options.

The run itself (manifest -> dataset -> model with PEFT -> packed engine -> ORPOTrainer -> saved
model) is `trainer/run.py`, a component, so that the demo and results recipes can call it too
without one recipe importing another.
"""

from __future__ import annotations

from rlhf_asr.trainer.run import run_training

__all__ = ["run_training"]
