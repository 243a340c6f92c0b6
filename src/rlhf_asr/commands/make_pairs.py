"""`rlhf-asr make-pairs`: mine preference pairs from an ASR manifest with a model's own mistakes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rlhf_asr.commands.data_options import DatasetOptions
from rlhf_asr.commands.evaluate import MODEL_HELP
from rlhf_asr.commands.parser import check_finite_positive, check_positive, options_parser, parse_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MakePairsOptions:
    model: str = field(metadata={"help": MODEL_HELP})
    data: str = field(
        metadata={"help": "ASR manifest (audio, duration, sentence[, language]) or a dataset (see the dataset options)"}
    )
    output: str = field(metadata={"help": "preference manifest to write (JSON lines; resumed if present)"})
    language: str | None = field(
        default=None, metadata={"help": "language of all rows (None: each row's, else detected)"}
    )
    num_candidates: int = field(default=4, metadata={"help": "candidates decoded per utterance"})
    # The choices are rlhf_asr.pairs.STRATEGIES / NEGATIVES (a test keeps them equal; pairs imports torch).
    strategy: Literal["beam", "sample"] = field(default="beam", metadata={"help": "n-best beam search or sampling"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (--strategy sample)"})
    negative: Literal["hardest", "worst", "random"] = field(
        default="hardest",
        metadata={
            "help": "rejected = most probable wrong candidate (hardest), highest-WER one (worst), or any (random)"
        },
    )
    corrupt_correct: bool = field(default=False, metadata={"help": "corrupt the reference where the model is right"})
    seed: int = field(default=0, metadata={"help": "sampling and corruption"})
    batch_size: int = field(default=8, metadata={"help": "utterances decoded at once"})
    no_resume: bool = field(default=False, metadata={"help": "start the output afresh instead of resuming"})
    skip_invalid_rows: bool = field(default=False, metadata={"help": "skip (and count) invalid manifest rows"})
    device: str | None = field(default=None, metadata={"help": "None: cuda when available, else cpu"})
    dtype: str | None = field(default=None, metadata={"help": "float32, float16 or bfloat16 (None: as saved)"})
    generate_nonspeech: int = field(
        default=0,
        metadata={"help": "also mine N non-speech clips made here (silence, noises, tones, hum, music; --seed)"},
    )
    nonspeech_dir: str | None = field(
        default=None, metadata={"help": "also mine your own noise/music/silence files (any length: 30 s windows)"}
    )
    pad_silence: float = field(
        default=0.0,
        metadata={"help": "also mine each speech clip with this many seconds of silence or noise around it (0: off)"},
    )
    loop_pairs: bool = field(
        default=False,
        metadata={
            "help": "also pair each speech clip's reference against itself running into a repetition loop "
            "(off: with no-speech pairs they cost silence, docs/results/hallucination_runs.md)"
        },
    )
    backend: Literal["hf", "ct2"] = field(
        default="hf",
        metadata={"help": "hf: transformers; ct2: CTranslate2 (--model a CT2 folder, or exported to one first)"},
    )
    ct2_quantization: Literal["int8", "int8_float32", "int8_float16", "float16", "float32"] = field(
        default="int8", metadata={"help": "--backend ct2: weight type when --model is exported first"}
    )

    def __post_init__(self):
        check_positive(self, "num_candidates", "batch_size")
        check_finite_positive(self, "temperature")
        from rlhf_asr.data import nonspeech  # numpy and soundfile, not torch

        nonspeech.check_nonspeech_options(self.generate_nonspeech, self.nonspeech_dir, self.pad_silence)
        if self.generate_nonspeech:  # the disk it needs, said before any data or model is read
            folder = nonspeech.generated_folder(Path(self.output).expanduser())
            nonspeech.check_nonspeech_space(self.generate_nonspeech, folder)


def build_parser():
    return options_parser("rlhf-asr make-pairs", [MakePairsOptions, DatasetOptions], __doc__.splitlines()[0])


def parse_args(argv: list[str]) -> MakePairsOptions:
    return parse_options(build_parser(), argv)[0]


def main(argv: list[str]) -> int:
    args, dataset_options, _ = parse_options(build_parser(), argv)
    from rlhf_asr.api import make_pairs
    from rlhf_asr.model.ct2_export import is_ct2_folder
    from rlhf_asr.trainer.validate import check_model_folder

    if not is_ct2_folder(args.model):
        check_model_folder(args.model, "--model")  # a truncated weights file: one line naming the option

    summary = make_pairs(
        args.model,
        dataset_options.source(args.data, "train"),
        args.output,
        num_candidates=args.num_candidates,
        strategy=args.strategy,
        temperature=args.temperature,
        negative=args.negative,
        corrupt_correct=args.corrupt_correct,
        generate_nonspeech=args.generate_nonspeech,
        nonspeech_dir=args.nonspeech_dir,
        pad_silence=args.pad_silence,
        loop_pairs=args.loop_pairs,
        language=args.language,
        seed=args.seed,
        batch_size=args.batch_size,
        resume=not args.no_resume,
        skip_invalid_rows=args.skip_invalid_rows,
        backend=args.backend,
        ct2_quantization=args.ct2_quantization,
        device=args.device,
        dtype=args.dtype,
    )
    log.info(
        "%d pairs written to %s (%d speech, %d no_speech, %d padded, %d loop; %d by corruption, "
        "%d with a repetition loop); "
        "%d already correct, %d without a usable candidate, %d unreadable, %d done in an earlier run",
        summary["written"],
        summary["output"],
        summary["speech"],
        summary["no_speech"],
        summary["padded"],
        summary["loop"],
        summary["corrupted"],
        summary["loops"],
        summary["skipped_correct"],
        summary["skipped_empty"],
        summary["errors"],
        summary["already_done"],
    )
    return 0
