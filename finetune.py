"""Classic entry point: `python finetune.py --base_model ... --train_data ...` (= `rlhf-asr train`).

The classic flags stay; `--model`/`--data` are the same options under the names the other
commands use, and `--quiet`/`--verbose` work here too.

Multi-GPU / multi-process: `torchrun --nproc_per_node=2 finetune.py ...`.
"""

import sys

from rlhf_asr.commands.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
