"""`rlhf-asr` entry point: dispatches to one module per subcommand.

Each subcommand lives in `rlhf_asr/commands/<name>.py` and exposes `main(argv) -> int`.
Modules are imported lazily so `rlhf-asr --help` does not pay for importing torch.
`--quiet`/`-q` and `--verbose`/`-v` go before or after the command: notes are log lines on
stderr (rlhf_asr.logs), while a command's product (transcripts, tables) is printed on stdout.
"""

from __future__ import annotations

import importlib
import sys

from rlhf_asr.errors import UserInputError
from rlhf_asr.logs import setup_logging

VERBOSITY = {"--quiet": -1, "-q": -1, "--verbose": 1, "-v": 1}

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "preference fine-tuning: ORPO (default), DPO, SimPO, MWER on K-best rows, SFT (= finetune.py)"),
    "evaluate": ("evaluate", "WER/CER and preference accuracy of a model on a manifest"),
    "transcribe": ("transcribe", "transcribe audio files with a base, merged or adapter checkpoint"),
    "merge": ("merge", "fold a LoRA/AdaLoRA adapter into its base model (--adapter_dir, --output_dir)"),
    "import-ct2": ("import_ct2", "convert a CTranslate2 Whisper checkpoint (--source, --output_dir)"),
    "export-ct2": ("export_ct2", "export a model (adapters merged first) to CTranslate2 / faster-whisper"),
    "make-pairs": ("make_pairs", "mine preference pairs from an ASR manifest with a model's own mistakes"),
    "bench": ("bench", "memory and step time: packed engine vs two-pass and SFT; K-best blocks (--candidates)"),
    "demo": ("demo", "offline demo: synthesized speech, bundled tiny.en, ORPO, WER before/after"),
    "results": (
        "results",
        "reproduce docs/results.md: the wer, hallucination, silence and objectives studies",
    ),
    "review": ("review", "human feedback: a review page (serve), its judgments as pairs (export), loadcheck"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: rlhf-asr [--quiet | --verbose] COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += [
        "",
        "`rlhf-asr COMMAND --help` shows a command's options.",
        "--quiet (-q): warnings and errors only; --verbose (-v): debug lines and library warnings.",
    ]
    return "\n".join(lines)


def _close_progress_bars() -> None:
    """Ends open tqdm bars (a run stopped mid-epoch) so the error starts on a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        bar.close()


def split_verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """(verbosity, argv without the global flags); the last of them wins, wherever it stands."""
    levels = [VERBOSITY[item] for item in argv if item in VERBOSITY]
    return (levels[-1] if levels else 0), [item for item in argv if item not in VERBOSITY]


def main(argv: list[str] | None = None) -> int:
    verbosity, argv = split_verbosity(list(sys.argv[1:] if argv is None else argv))
    setup_logging(verbosity)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rlhf-asr: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"rlhf_asr.commands.{COMMANDS[name][0]}")
    try:
        return int(module.main(rest) or 0)
    except UserInputError as error:
        # Bad input is the user's to fix: one clear line, no traceback.
        _close_progress_bars()
        print(f"rlhf-asr {name}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
