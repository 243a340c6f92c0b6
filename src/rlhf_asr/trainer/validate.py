"""Checks of a training run's options and files, before any data or model is loaded.

PEFT, the Trainer and torch reject bad values late (after loading the model and the manifest),
some with a ZeroDivisionError, some not at all (`--alpha -1` trains a meaningless objective,
`--max_train_rows 0` trains on every row). A resume from a truncated or mismatched checkpoint
fails deep inside the Trainer. Everything here raises a one-line `UserInputError` naming the
option or file, in seconds. Zero never means "no limit": leave the option out for that.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections import Counter
from pathlib import Path

from rlhf_asr.data.sources import is_manifest
from rlhf_asr.errors import UserInputError
from rlhf_asr.trainer.config import DataArguments, ModelArguments, PreferenceConfig
from rlhf_asr.trainer.objective_options import check_objective_run

logger = logging.getLogger(__name__)

# Leaf module names of WhisperForConditionalGeneration that PEFT can adapt (tests check them
# against transformers' model): attention and MLP projections, the output projection (tied to
# the token embedding), the embeddings and the encoder's two input convolutions.
WHISPER_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "proj_out")
WHISPER_OTHER_MODULES = ("conv1", "conv2", "embed_tokens", "embed_positions")
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
ADAPTER_CONFIG, ADAPTER_WEIGHTS, FULL_WEIGHTS = "adapter_config.json", "adapter_model.safetensors", "model.safetensors"
TORCH_STATE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth", "rng_state_*.pth")
# One of these makes a folder a model: a Whisper (or merged, or CTranslate2) config, or a PEFT adapter's.
MODEL_CONFIGS = ("config.json", ADAPTER_CONFIG)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserInputError(message)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def check_model_options(args: ModelArguments) -> None:
    method = args.peft_method
    if method == "none":
        return
    _require(_finite(args.lora_alpha) and args.lora_alpha > 0, f"--lora_alpha must be above 0, got {args.lora_alpha}")
    _require(
        _finite(args.lora_dropout) and 0 <= args.lora_dropout < 1,
        f"--lora_dropout is a probability in [0, 1), got {args.lora_dropout}",
    )
    if method == "lora":
        _require(args.lora_r >= 1, f"--lora_r must be at least 1, got {args.lora_r}")
    else:
        _require(args.adalora_init_r >= 1, f"--adalora_init_r must be at least 1, got {args.adalora_init_r}")
        _require(
            1 <= args.adalora_target_r <= args.adalora_init_r,
            f"--adalora_target_r must be between 1 and --adalora_init_r ({args.adalora_init_r}), got "
            f"{args.adalora_target_r}",
        )
        _require(args.adalora_delta_t >= 1, f"--adalora_delta_t must be at least 1, got {args.adalora_delta_t}")
        for name in ("adalora_tinit", "adalora_tfinal"):
            value = getattr(args, name)
            _require(_finite(value) and 0 <= value < 1, f"--{name} is a share of the run in [0, 1), got {value}")
    check_target_modules(args.target_modules, method)


def check_target_modules(text: str, method: str) -> None:
    """Every name must end in a module Whisper has (PEFT matches names or dotted suffixes of names)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    _require(bool(names), "--target_modules is empty; e.g. q_proj,v_proj")
    known = WHISPER_LINEAR_MODULES if method == "adalora" else WHISPER_LINEAR_MODULES + WHISPER_OTHER_MODULES
    unknown = [name for name in names if name.rsplit(".", 1)[-1] not in known]
    _require(
        not unknown, f"--target_modules: {', '.join(unknown)} not in Whisper ({method} can adapt {','.join(known)})"
    )


def check_data_options(args: DataArguments) -> None:
    _require(
        args.max_train_rows is None or args.max_train_rows >= 1,
        f"--max_train_rows must be at least 1, got {args.max_train_rows} (leave it out to train on every row)",
    )


def check_trainer_options(config: PreferenceConfig) -> None:
    for name in (
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "logps_chunk_size",
        "eval_wer_max_rows",
        "encoder_cache_mb",
    ):
        value = getattr(config, name)
        _require(value >= 1, f"--{name} must be at least 1, got {value}")
    _require(
        _finite(config.learning_rate) and config.learning_rate > 0,
        f"--learning_rate must be a finite number above 0, got {config.learning_rate}",
    )
    _require(
        _finite(config.alpha) and config.alpha >= 0,
        f"--alpha (weight of the odds-ratio term) must be a finite number >= 0, got {config.alpha}",
    )
    if not (config.max_steps and config.max_steps > 0):
        _require(
            _finite(config.num_train_epochs) and config.num_train_epochs > 0,
            f"--num_train_epochs must be above 0, got {config.num_train_epochs} (a run of 0 epochs saves "
            "an untrained model)",
        )
    for name in ("weight_decay", "max_grad_norm", "adam_epsilon"):
        _require(_finite(getattr(config, name)), f"--{name} must be a finite number, got {getattr(config, name)}")
    output = Path(config.output_dir).expanduser()
    _require(not output.exists() or output.is_dir(), f"--output_dir {config.output_dir}: is a file, not a folder")


def check_model_folder(model: str, option: str = "--base_model") -> None:
    """A local model folder must be one (a config.json or adapter_config.json), with complete
    safetensors files (headers cover the file).

    Without the first check a folder of audio fails as "no usable Whisper processor" with a hub
    address, as if a download had failed; transformers reports a truncated file with a
    SafetensorError traceback after a while, the headers alone tell in milliseconds. (Hub ids and
    bundled names are checked when loaded; a CTranslate2 folder has a config.json of its own.)
    """
    folder = Path(str(model)).expanduser()
    if not folder.is_dir():
        return
    if not any((folder / name).is_file() for name in MODEL_CONFIGS):
        raise UserInputError(f"{option} {model}: not a model folder ({_what_it_holds(folder)})")
    for file in sorted(folder.glob("*.safetensors")):
        check_safetensors(file, option)


def _what_it_holds(folder: Path) -> str:
    """Why the folder is not a model, and what it is instead, for the error line."""
    found = checkpoints_in(folder)
    if found:
        return f"no {' or '.join(MODEL_CONFIGS)}; it holds training checkpoints: pass one, e.g. {found[-1]}"
    suffixes = Counter(path.suffix.lower() or path.name for path in folder.iterdir() if path.is_file())
    held = ", ".join(f"{count} {suffix} file{'s' * (count > 1)}" for suffix, count in suffixes.most_common(3))
    return f"no {' or '.join(MODEL_CONFIGS)} in it; it holds {held or 'no files'}"


def check_safetensors(file: Path, option: str) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            handle.keys()
    except Exception as error:  # SafetensorError and OSError both mean an unusable file
        raise UserInputError(f"{option} {file}: truncated or corrupt safetensors file ({error})") from None


def _resuming(config: PreferenceConfig) -> bool:
    value = config.resume_from_checkpoint
    return value is not None and str(value).strip().lower() not in {"", "false", "none"}


def checkpoints_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if CHECKPOINT_DIR.match(path.name) and path.is_dir()]
    return sorted(found, key=lambda path: int(CHECKPOINT_DIR.match(path.name).group(1)))


def resolve_resume(config: PreferenceConfig) -> Path | None:
    """The checkpoint folder to resume from (`True` = the last in --output_dir), or None."""
    if not _resuming(config):
        return None
    value = str(config.resume_from_checkpoint).strip()
    if value.lower() == "true":
        found = checkpoints_in(Path(config.output_dir).expanduser())
        _require(
            bool(found), f"--resume_from_checkpoint True: no checkpoint-N folder in --output_dir {config.output_dir}"
        )
        return found[-1]
    folder = Path(value).expanduser()
    _require(folder.exists(), f"--resume_from_checkpoint {value}: no such folder")
    _require(folder.is_dir(), f"--resume_from_checkpoint {value}: is a file; pass a checkpoint-N folder")
    return folder


def check_checkpoint(folder: Path, model_args: ModelArguments) -> None:
    """The checkpoint holds a readable state, weights of this run's kind and shape, and loadable torch states."""
    where = f"--resume_from_checkpoint {folder}"
    state = folder / TRAINER_STATE
    _require(state.is_file(), f"{where}: no {TRAINER_STATE}; not a complete Trainer checkpoint")
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{where}: {TRAINER_STATE} is unreadable ({error})") from None
    check_checkpoint_weights(folder, model_args, where)
    for pattern in TORCH_STATE_FILES:
        for file in sorted(folder.glob(pattern)):
            check_torch_file(file, where)


def check_checkpoint_weights(folder: Path, model_args: ModelArguments, where: str) -> None:
    method = model_args.peft_method
    adapter_config = folder / ADAPTER_CONFIG
    if method == "none":
        _require(
            not adapter_config.exists(),
            f"{where}: an adapter checkpoint; --peft none (full fine-tuning) cannot resume it",
        )
        _require((folder / FULL_WEIGHTS).is_file(), f"{where}: no {FULL_WEIGHTS}")
        check_safetensors(folder / FULL_WEIGHTS, where)
        return
    _require(adapter_config.is_file(), f"{where}: no {ADAPTER_CONFIG}; not a checkpoint of a --peft {method} run")
    try:
        saved = json.loads(adapter_config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{where}: {ADAPTER_CONFIG} is unreadable ({error})") from None
    kind = str(saved.get("peft_type", "")).lower()
    _require(kind == method, f"{where}: a {kind or 'unknown'} checkpoint; this run uses --peft {method}")
    expected = (
        {"r": model_args.lora_r}
        if method == "lora"
        else {"init_r": model_args.adalora_init_r, "target_r": model_args.adalora_target_r}
    )
    for key, value in expected.items():
        option = "--lora_r" if key == "r" else f"--adalora_{key}"
        _require(saved.get(key) == value, f"{where}: saved with {key}={saved.get(key)}; this run has {option} {value}")
    _require((folder / ADAPTER_WEIGHTS).is_file(), f"{where}: no {ADAPTER_WEIGHTS}")
    check_safetensors(folder / ADAPTER_WEIGHTS, where)


def check_torch_file(file: Path, where: str) -> None:
    import torch
    from transformers.trainer_pt_utils import safe_globals

    try:
        with safe_globals():
            torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # truncation surfaces as several error types
        reason = " ".join(str(error).split())[:200]
        raise UserInputError(f"{where}: {file.name} is truncated or corrupt ({reason})") from None


def prepare_output_dir(config: PreferenceConfig, resuming: bool) -> None:
    """Refuses an --output_dir holding another run's checkpoints, or clears them with --overwrite_output_dir.

    A new run would leave the old run's later checkpoints beside its own, and a later
    `--resume_from_checkpoint True` would pick the stale one with the highest step.
    """
    output = Path(config.output_dir).expanduser()
    found = checkpoints_in(output)
    if not found or resuming:
        return
    if not config.overwrite_output_dir:
        names = ", ".join(path.name for path in found[:3]) + (", ..." if len(found) > 3 else "")
        raise UserInputError(
            f"--output_dir {config.output_dir} holds checkpoints of an earlier run ({names}); pass "
            "--overwrite_output_dir True to delete them, --resume_from_checkpoint True to continue, or another folder"
        )
    if config.process_index == 0:
        for path in found:
            shutil.rmtree(path) if not path.is_symlink() else path.unlink()
        logger.warning(f"--overwrite_output_dir: deleted {len(found)} checkpoint(s) of an earlier run in {output}")


def streams_training(data_args: DataArguments, config: PreferenceConfig) -> bool:
    """--streaming with --max_steps and a dataset: rows are read while training, none up front."""
    return bool(data_args.streaming and config.max_steps and config.max_steps > 0) and not is_manifest(
        data_args.train_data
    )


def validate_training_run(model_args: ModelArguments, data_args: DataArguments, config: PreferenceConfig) -> None:
    """All option and file checks of a training run; resolves `--resume_from_checkpoint True` to its folder."""
    check_model_options(model_args)
    check_data_options(data_args)
    check_trainer_options(config)
    # --loss and its weights; what the objective cannot train with (DPO: diverging scope, augmentation, a stream)
    check_objective_run(config, bool(data_args.augment_config_path), streams_training(data_args, config))
    check_model_folder(model_args.base_model)
    checkpoint = resolve_resume(config)
    if checkpoint is not None:
        check_checkpoint(checkpoint, model_args)
        config.resume_from_checkpoint = str(checkpoint)
    else:
        config.resume_from_checkpoint = None
    prepare_output_dir(config, resuming=checkpoint is not None)
