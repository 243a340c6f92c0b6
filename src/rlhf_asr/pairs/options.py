"""What make-pairs mines: the one statement of its options, their defaults, help and checks.

`MiningOptions` is read by all three layers: the command's options dataclass subclasses it (so its
fields are the command line's `--num_candidates`, `--strategy`, ...), `api.make_pairs` builds one
from its keyword arguments, and `mine_pairs` takes one (`dataclasses.replace` for a change, as
openai/whisper's `DecodingOptions`). Its checks run where it is made, in the command line's words.

Torch-free, and kept so (tests/pairs/test_pair_options.py): `rlhf-asr make-pairs --help` imports
this module and must not wait for torch. The non-speech checks import numpy and soundfile, only
when an object is made.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Literal

from rlhf_asr.errors import UserInputError
from rlhf_asr.option_checks import check_finite_positive, check_positive, check_types

Strategy = Literal["beam", "sample"]
Negative = Literal["hardest", "worst", "random"]
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)  # how candidates are decoded
NEGATIVES: tuple[str, ...] = typing.get_args(Negative)  # which wrong candidate is rejected


@dataclass(frozen=True)
class MiningOptions:
    """How candidates are decoded and which one is rejected, and what besides the manifest is mined."""

    language: str | None = field(
        default=None, metadata={"help": "language of all rows (None: each row's, else detected)"}
    )
    num_candidates: int = field(default=4, metadata={"help": "candidates decoded per utterance"})
    strategy: Strategy = field(default="beam", metadata={"help": "n-best beam search or sampling"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (--strategy sample)"})
    negative: Negative = field(
        default="hardest",
        metadata={
            "help": "rejected = most probable wrong candidate (hardest), highest-WER one (worst), or any (random)"
        },
    )
    corrupt_correct: bool = field(default=False, metadata={"help": "corrupt the reference where the model is right"})
    seed: int = field(default=0, metadata={"help": "sampling and corruption"})
    batch_size: int = field(default=8, metadata={"help": "utterances decoded at once"})
    generate_nonspeech: int = field(
        default=0,
        metadata={"help": "also mine N non-speech clips made here (silence, noises, tones, hum, music; --seed)"},
    )
    nonspeech_dir: str | None = field(  # a Path from the Python API is kept as given
        default=None, metadata={"help": "also mine your own noise/music/silence files (any length: 30 s windows)"}
    )
    pad_silence: float = field(  # seconds
        default=0.0,
        metadata={
            "help": "also mine each speech clip with up to this many seconds of silence or noise around it (0: off; "
            "25 beside no-speech pairs, else the model may write nothing for speech after a pause: README, No speech)"
        },
    )
    loop_pairs: bool = field(
        default=False,
        metadata={
            "help": "also pair each speech clip's reference against itself running into a repetition loop "
            "(off: with no-speech pairs they cost silence, docs/results/hallucination_runs.md)"
        },
    )
    nbest: int = field(
        default=0,
        metadata={
            "help": "K > 0: write one K-best row per clip instead of a pair: the reference and up to K distinct "
            "hypotheses, each with its word errors (for `train --loss mwer`, or several rejected per clip); "
            "max(--num_candidates, K) are decoded, duplicates after normalisation dropped; --negative unused. 0: pairs"
        },
    )

    def __post_init__(self):
        """UserInputError naming the option, before any data or model is read. The command line's
        parser and the API's type check already refuse other choices: this catches a direct caller."""
        check_types(
            {"strategy": Strategy, "negative": Negative}, {"strategy": self.strategy, "negative": self.negative}
        )
        check_positive(self, "num_candidates", "batch_size")
        check_finite_positive(self, "temperature")
        from rlhf_asr.data.nonspeech import check_nonspeech_options  # numpy and soundfile, not torch

        check_nonspeech_options(self.generate_nonspeech, self.nonspeech_dir, self.pad_silence)
        self._check_nbest()

    def _check_nbest(self) -> None:
        """--nbest: a whole number >= 0, and none of the options that write pair rows beside it."""
        if isinstance(self.nbest, bool) or not isinstance(self.nbest, int) or self.nbest < 0:
            raise UserInputError(f"--nbest must be a whole number >= 0 (0: preference pairs), not {self.nbest!r}")
        pair_only = [name for name in ("loop_pairs", "corrupt_correct") if getattr(self, name)]
        if self.nbest and pair_only:
            raise UserInputError(
                f"--{pair_only[0]} writes preference pairs: not with --nbest (a file holds pairs or K-best rows)"
            )

    def decoding(self) -> dict:
        """Keyword arguments of the batch decoder (`decode_encoded`, `ct2_candidates`): an n-best list
        of `num_candidates` (with --nbest K, at least K), scored, by beam search or by sampling at `temperature`."""
        sample = self.strategy == "sample"
        count = max(self.num_candidates, self.nbest)
        return dict(
            num_beams=1 if sample else count,
            num_return_sequences=count,
            do_sample=sample,
            temperature=self.temperature if sample else None,
            score=True,
        )


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(MiningOptions))
# The defaults, for a signature that lists the options one by one (api.make_pairs), without making an object.
DEFAULTS = SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(MiningOptions)})
