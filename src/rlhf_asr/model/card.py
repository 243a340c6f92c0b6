"""The model card (README.md) of a trained model, built from the run's own facts.

PEFT's `save_pretrained` writes a blank template ("[More Information Needed]" in every field) that
names this machine's cache folder as the base model. A reader of the folder, or of its hub page,
needs what the run knows: the base model under a name that resolves anywhere, how much data, which
options, which languages, the WER before and after when it was measured, and the licence. The YAML
front matter comes from huggingface_hub's `ModelCardData`, so the hub reads base_model, license,
language and tags as it does for any card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The bundled weights are CTranslate2 conversions of OpenAI's checkpoints (model/bundled.py).
BUNDLED_HUB_IDS = {"tiny.en": "openai/whisper-tiny.en", "base": "openai/whisper-base"}
WHISPER_LICENSE = "mit"  # OpenAI released Whisper's code and weights under the MIT licence
CARD_FILE = "README.md"
METHOD_NAMES = {"lora": "LoRA", "adalora": "AdaLoRA"}
# The objective (`--loss`) as the card's title names it, and how the text says it trained.
OBJECTIVE_TITLES = {"orpo": "ORPO", "sft": "supervised fine-tuning", "dpo": "DPO", "simpo": "SimPO", "mwer": "MWER"}
OBJECTIVE_TEXTS = {
    "orpo": "with ORPO (odds-ratio preference optimisation, Hong et al. 2024)",
    "sft": "with supervised fine-tuning on the preferred transcript (the rejected ones unused)",
    "dpo": "with DPO (direct preference optimisation, Rafailov et al. 2023; the starting model's log-probs as its "
    "reference, computed once)",
    "simpo": "with SimPO (simple preference optimisation, Meng et al. 2024)",
    "mwer": "with MWER (minimum word error rate training, Prabhavalkar et al. 2018: expected word errors over a "
    "K-best list of the model's own hypotheses, plus the reference's cross-entropy)",
}
# What the run read: pairs (make-pairs) or K-best rows (make-pairs --nbest; pairwise objectives prefer the
# reference over each hypothesis with word errors).
DATA_TEXTS = {
    False: "on pairs of a preferred and a rejected transcript of the same audio",
    True: "on K-best rows: the reference and the model's own hypotheses of the same audio, with their word errors",
}


def weight_text(value: float | bool) -> str:
    """An objective weight as cards and options write it: 0.1, 1, True."""
    return str(value) if isinstance(value, bool) else f"{value:g}"


@dataclass(frozen=True)
class CardFacts:
    """What a card states; every field is known by the end of a training run."""

    base_model: str  # portable name (loading.portable_model_name): hub id, bundled name or folder as given
    base_is_folder: bool  # base_model is a local folder (`runs/x` looks like a hub id but is not one)
    library: str  # "peft" (an adapter folder) or "transformers" (a full or merged model)
    peft: str  # lora | adalora | none (full fine-tuning)
    lora_r: int | None  # rank (AdaLoRA: initial rank); None for full fine-tuning
    lora_alpha: int | None  # LoRA scaling; None for full fine-tuning
    target_modules: str | None  # comma-separated module names; None for full fine-tuning
    alpha: float  # weight of ORPO's odds-ratio term (--alpha; read by --loss orpo only)
    epochs: float
    learning_rate: float
    steps: int  # optimizer steps taken
    batch_size: int  # pairs per device and step
    rejected_scope: str  # all | diverging
    freeze_encoder: bool
    task: str  # transcribe | translate
    train_pairs: int
    train_pairs_skipped: int
    test_pairs: int | None  # None: no held-out set
    languages: tuple[str, ...]  # ISO codes of the training rows
    wer_before: float | None  # fraction, None: not evaluated before training
    wer_after: float | None  # fraction, None: not evaluated after training
    wer_rows: int | None = None  # test rows decoded for the WER
    wer_after_step: int | None = None  # step of the last evaluation (before the end: said in the card)
    merged: bool = False  # this card describes the merged folder of the adapter
    no_speech_pairs: int | None = None  # pairs whose chosen is silence; None: a stream, not counted
    nospeech_target: str = "eot"  # the chosen of those pairs (data/nospeech_target.py)
    empty_output: bool = False  # the saved generation config lets <|endoftext|> come first
    loss: str = "orpo"  # the objective (--loss)
    loss_weights: tuple[tuple[str, float], ...] = ()  # its weights as trained, (name, value)
    kbest: bool = False  # trained on K-best rows (make-pairs --nbest), not on pairs


def base_hub_id(name: str, is_folder: bool = False) -> str | None:
    """The hub id of a base model name, or None for a local folder (the hub cannot link it)."""
    if is_folder:
        return None
    if name in BUNDLED_HUB_IDS:
        return BUNDLED_HUB_IDS[name]
    parts = name.split("/")
    if len(parts) == 2 and all(parts) and not name.startswith((".", "~")):
        return name
    return None


def base_license(name: str, is_folder: bool = False) -> str | None:
    """The base model's licence as a hub licence id, when known from its name (Whisper: MIT)."""
    hub_id = base_hub_id(name, is_folder) or ""
    return WHISPER_LICENSE if hub_id.startswith("openai/whisper-") else None


def _percent(value: float | None) -> str:
    return "not evaluated" if value is None else f"{100 * value:.1f}%"


def _after_label(facts: CardFacts) -> str:
    step = facts.wer_after_step
    if facts.wer_after is None or step is None or step >= facts.steps:
        return "after training"
    return f"after training, at step {step} of {facts.steps} (the last evaluation)"


def front_matter(facts: CardFacts) -> str:
    from huggingface_hub import ModelCardData

    hub_id = base_hub_id(facts.base_model, facts.base_is_folder)
    tags = ["whisper", "automatic-speech-recognition", facts.loss, "rlhf-asr"]
    if facts.peft != "none":
        tags.append(facts.peft)
    if hub_id and facts.library == "peft":
        tags.append(f"base_model:adapter:{hub_id}")  # as PEFT tags an adapter
    data = ModelCardData(
        base_model=hub_id,
        library_name=facts.library,
        license=base_license(facts.base_model, facts.base_is_folder),
        language=list(facts.languages) or None,
        pipeline_tag="automatic-speech-recognition",
        tags=tags,
    )
    return f"---\n{data.to_yaml()}\n---\n"


def _options(facts: CardFacts) -> list[str]:
    if facts.peft == "none":
        method = "full fine-tuning"
    else:
        name = METHOD_NAMES.get(facts.peft, facts.peft)
        method = f"{name} (rank {facts.lora_r}, alpha {facts.lora_alpha}, modules {facts.target_modules})"
    if facts.loss == "orpo":
        weights = [f"| ORPO `--alpha` | {facts.alpha:g} |"]
    else:  # SFT has none
        told = ", ".join(f"`--{name}` {weight_text(value)}" for name, value in facts.loss_weights)
        weights = [f"| {OBJECTIVE_TITLES.get(facts.loss, facts.loss)} weights | {told} |"] if told else []
    return [
        f"| method | {method} |",
        f"| objective `--loss` | {facts.loss} |",
        *weights,
        f"| epochs | {facts.epochs:g} ({facts.steps} optimizer steps) |",
        f"| learning rate | {facts.learning_rate:g} |",
        f"| pairs per device step | {facts.batch_size} |",
        f"| rejected scope | {facts.rejected_scope} |",
        f"| encoder | {'frozen' if facts.freeze_encoder else 'trained'} |",
        f"| task | {facts.task} |",
    ]


def _usage(facts: CardFacts) -> list[str]:
    if facts.library == "transformers":
        return [
            "```python",
            "from transformers import pipeline",
            'asr = pipeline("automatic-speech-recognition", model="path/to/this-folder")',
            "```",
        ]
    return [
        "```bash",
        "rlhf-asr transcribe --model path/to/this-folder audio.wav",
        "rlhf-asr merge path/to/this-folder merged/   # a plain Whisper folder, no peft needed",
        "```",
        "",
        f"With PEFT alone: load `{base_hub_id(facts.base_model, facts.base_is_folder) or facts.base_model}` as "
        "`WhisperForConditionalGeneration`, then `PeftModel.from_pretrained(model, path/to/this-folder)`.",
    ]


def _silence(facts: CardFacts) -> list[str]:
    """Which decoders can write nothing on audio without speech (docs/decoding.md measures them)."""
    if facts.no_speech_pairs == 0:
        return ["Trained on speech pairs only: on silence, noise or music it writes text as its base model does."]
    lines = []
    if facts.empty_output and facts.nospeech_target == "eot":
        lines.append(
            "The saved generation config lets `<|endoftext|>` come first (Whisper's own suppresses it), so "
            "`transformers.pipeline`, `generate` with this folder's generation config, and faster-whisper on an "
            "`rlhf-asr export-ct2` export, each at its defaults, can write nothing on audio without speech."
        )
    if facts.nospeech_target in ("nospeech", "both"):
        lines.append(
            "No-speech pairs trained Whisper's `<|nospeech|>` path: faster-whisper, openai-whisper's `transcribe` "
            "and long-form `generate` skip a window whose no-speech probability is over `no_speech_threshold` "
            "and whose text's average log-prob is under `log_prob_threshold`."
        )
    if facts.empty_output and facts.nospeech_target == "both":
        # measured in the silence study: the same weights and the same output as the `nospeech` target
        lines.append(
            "The saved generation config lets `<|endoftext|>` come first, but the pairs trained the `<|nospeech|>` "
            "path, not `<|endoftext|>` after the prompt: short-form `generate` and the pipeline, which never read "
            "the no-speech probability, may still write on silence. For them, train with `--nospeech_target eot`."
        )
    if not facts.empty_output:
        lines.append(
            "Short-form `generate` and the pipeline still suppress `<|endoftext|>` as the first token: there "
            "the model writes at least one token on silence."
        )
    return lines


def model_card(facts: CardFacts) -> str:
    """The Markdown of the card (YAML front matter, then text); a pure function of `facts`."""
    hub_id = base_hub_id(facts.base_model, facts.base_is_folder)
    base = f"[{facts.base_model}](https://huggingface.co/{hub_id})" if hub_id else f"`{facts.base_model}`"
    if facts.base_model in BUNDLED_HUB_IDS:
        base += f" (the bundled `{facts.base_model}` weights)"
    if facts.merged:
        what = "the merged model (the adapter folded into the base weights)"
    elif facts.peft == "none":
        what = "a fully fine-tuned model"
    else:
        what = f"a {METHOD_NAMES.get(facts.peft, facts.peft)} adapter"
    licence = base_license(facts.base_model, facts.base_is_folder)
    licence_line = (
        f"{licence.upper()}, the base model's licence (OpenAI Whisper)."
        if licence
        else "not stated here: see the base model's licence."
    )
    skipped = f", {facts.train_pairs_skipped} skipped as invalid" if facts.train_pairs_skipped else ""
    unit = "K-best rows" if facts.kbest else "pairs"
    test = f"{facts.test_pairs} held-out {unit}" if facts.test_pairs is not None else "no held-out set"
    rows = f" ({facts.wer_rows} held-out rows decoded)" if facts.wer_rows else ""
    lines = [
        front_matter(facts),
        f"# Whisper fine-tuned with {OBJECTIVE_TITLES.get(facts.loss, facts.loss)} from {facts.base_model}",
        "",
        f"This folder holds {what}, trained {OBJECTIVE_TEXTS.get(facts.loss, f'with --loss {facts.loss}')} "
        f"{DATA_TEXTS[facts.kbest]}, by "
        "`rlhf-asr train` (batch-opt-rlhf-asr).",
        "",
        f"- **Base model:** {base}",
        f"- **Training data:** {facts.train_pairs} {'K-best rows' if facts.kbest else 'preference pairs'}{skipped}; "
        f"{test}",
        f"- **Languages:** {', '.join(facts.languages) or 'not recorded'}",
        f"- **Licence:** {licence_line}",
        "",
        "## Word error rate",
        "",
        "| | WER |",
        "|---|---|",
        f"| before training (base model) | {_percent(facts.wer_before)} |",
        f"| {_after_label(facts)} | {_percent(facts.wer_after)} |",
        "",
        f"Measured on the held-out set by `--eval_wer`{rows}; before training only with `--eval_on_start True`.",
        "",
        "## Training options",
        "",
        "| option | value |",
        "|---|---|",
        *_options(facts),
        "",
        "## Silence",
        "",
        *_silence(facts),
        "",
        "## Use",
        "",
        *_usage(facts),
        "",
    ]
    return "\n".join(lines)


def write_model_card(folder: str | Path, facts: CardFacts) -> Path:
    """Writes README.md into `folder` (replacing PEFT's template); returns its path."""
    path = Path(folder) / CARD_FILE
    path.write_text(model_card(facts), encoding="utf-8")
    return path
