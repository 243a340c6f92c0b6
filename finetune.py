"""Classic entry point: `python finetune.py --base_model ... --train_data ...` (= `rlhf-asr train`).

Multi-GPU / multi-process: `torchrun --nproc_per_node=2 finetune.py ...`.
"""

import sys

from rlhf_asr.commands.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
