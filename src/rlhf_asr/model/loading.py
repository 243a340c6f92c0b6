"""Finding and loading a Whisper checkpoint: local folder, PEFT adapter, hub id or bundled name.

Training machines are often offline, and a hub look-up there can hang for minutes before
failing with a network trace. So a name is resolved locally first (folder, bundled model,
Hugging Face cache) and the hub is asked only when not offline, with short timeouts; every
failure ends in one line saying what to pass instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from pathlib import Path

import torch

from rlhf_asr.data.tokens import transcript_encoder
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.core import whisper_generation_config

BUNDLED_NAMES = ("tiny.en", "base")
HUB_TIMEOUT_S = 5.0
ADAPTER_CONFIG = "adapter_config.json"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
# What a Whisper checkpoint needs; other formats (flax, tf, onnx) would only cost download time.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.tiktoken"]


def offline_message(name: str) -> str:
    return (
        f"model {name!r} is not a local folder and is not in the Hugging Face cache; this machine cannot "
        "reach the hub (offline). Pass a local folder, e.g. one made by `rlhf-asr import-ct2 tiny.en DIR`"
    )


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "~", "/", "\\")) or _HUB_ID.fullmatch(text) is None


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(flag.strip().lower() in {"1", "true", "yes", "on"} for flag in flags)


def resolve_model_source(name_or_path: str | Path) -> str:
    """A local folder holding the checkpoint `name_or_path` names; never hangs on the network."""
    text = str(name_or_path).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise UserInputError(f"model path {text} is a file; pass the checkpoint's folder")
    if text in BUNDLED_NAMES:
        from rlhf_asr.model.bundled import ensure_bundled_model

        return str(ensure_bundled_model(text))
    if _looks_like_path(text):
        raise UserInputError(f"model path does not exist: {text}")
    return _from_hub(text)


def _from_hub(repo_id: str) -> str:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except HFValidationError:
        raise UserInputError(f"model path does not exist: {repo_id}") from None
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError is an OSError)
        pass
    if _offline():
        raise UserInputError(offline_message(repo_id))
    try:
        HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S)
        return snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS, etag_timeout=HUB_TIMEOUT_S)
    except (RepositoryNotFoundError, GatedRepoError) as error:
        raise UserInputError(f"model {repo_id!r}: not a local folder, and the hub refused it: {error}") from None
    except Exception:  # any network failure means the same to the user
        raise UserInputError(offline_message(repo_id)) from None


def is_adapter_folder(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base_name(adapter_dir: str | Path) -> str:
    """`base_model_name_or_path` from an adapter's config."""
    config_path = Path(adapter_dir) / ADAPTER_CONFIG
    try:
        base = json.loads(config_path.read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as error:
        raise UserInputError(f"{config_path}: unreadable adapter config ({error})") from None
    if not base:
        raise UserInputError(f"{config_path}: no base_model_name_or_path; cannot tell which model it adapts")
    return str(base)


def resolve_adapter_base(adapter_dir: str | Path) -> str:
    """The local folder of an adapter's base model, or a UserInputError naming both."""
    base = adapter_base_name(adapter_dir)
    try:
        return resolve_model_source(base)
    except UserInputError as error:
        raise UserInputError(f"base model of adapter {adapter_dir} is unavailable: {error}") from None


def _has_processor(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / "preprocessor_config.json").is_file() or (folder / "processor_config.json").is_file()


def load_processor(name_or_path: str | Path):
    """The WhisperProcessor of a model, merged folder or adapter (falling back to its base)."""
    from transformers import WhisperProcessor

    source = resolve_model_source(name_or_path)
    if is_adapter_folder(source) and not _has_processor(source):
        source = resolve_adapter_base(source)
    try:
        return WhisperProcessor.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise UserInputError(f"{source}: no usable Whisper processor ({error})") from None


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise UserInputError(f"unknown dtype {dtype!r} (e.g. float32, float16, bfloat16)")
    return value


@contextlib.contextmanager
def quiet_peft_deprecations():
    """Silences the FutureWarning PEFT triggers in transformers 5 on every wrap or adapter load.

    PEFT reads `model.is_gradient_checkpointing`, deprecated in transformers 5: a library-internal
    matter the user can do nothing about, printed once per model load.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def limit_new_tokens(model, max_new_tokens: int | None) -> None:
    """Caps generation at `max_new_tokens`, clearing `max_length` so generate does not warn about both."""
    config = whisper_generation_config(model)
    config.max_new_tokens = max_new_tokens
    if max_new_tokens is not None:
        config.max_length = None


def load_base_model(source: str, dtype: str | torch.dtype | None = None):
    """WhisperForConditionalGeneration from a local folder, with a clear error when it is not one.

    `dtype` None keeps transformers' default (the checkpoint's own dtype in transformers 5).
    """
    from transformers import WhisperForConditionalGeneration

    try:
        model = WhisperForConditionalGeneration.from_pretrained(source, dtype=_dtype(dtype))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{source}: not a loadable Whisper checkpoint ({error})") from None
    # A stored generation config with both limits would make every generate call warn.
    limit_new_tokens(model, model.generation_config.max_new_tokens)
    return model


def use_adapter_generation_config(base, adapter_dir: str | Path) -> None:
    """The generation config a training run saved beside its adapter (model/empty_output.py), if any.

    It is the one the adapter was trained and evaluated with (e.g. <|endoftext|> allowed first);
    adapters saved without one decode with their base model's.
    """
    from transformers import GenerationConfig

    if (Path(adapter_dir) / "generation_config.json").is_file():
        base.generation_config = GenerationConfig.from_pretrained(str(adapter_dir))
        limit_new_tokens(base, base.generation_config.max_new_tokens)


def load_for_inference(
    name_or_path: str | Path, device: str | torch.device = "cpu", dtype=None, max_new_tokens: int | None = None
):
    """(model in eval mode on `device`, processor) for a base, merged or adapter checkpoint.

    An adapter is loaded onto its base as a PeftModel (not merged), so it can be compared with
    the merged export. `max_new_tokens` caps generation (see `limit_new_tokens`).
    """
    source = resolve_model_source(name_or_path)
    if is_adapter_folder(source):
        from peft import PeftModel

        base = load_base_model(resolve_adapter_base(source), dtype)
        use_adapter_generation_config(base, source)
        with quiet_peft_deprecations():
            model = PeftModel.from_pretrained(base, source)
    else:
        model = load_base_model(source, dtype)
    if max_new_tokens is not None:
        limit_new_tokens(model, max_new_tokens)
    return model.to(device).eval(), load_processor(source)


def portable_model_name(source: str | Path) -> str:
    """The name a user would give for the local folder `source`, valid on any machine.

    `resolve_model_source` turns `tiny.en` into a converted folder in this machine's cache and a
    hub id into a snapshot in the Hugging Face cache; saved outputs should name `tiny.en` or the
    hub id, which `resolve_model_source` resolves again elsewhere. Any other folder is kept as given.
    """
    from rlhf_asr.model.bundled import cache_root

    text = str(source)
    path = Path(text)
    for name in BUNDLED_NAMES:
        if path.name == f"whisper-{name}" and path.parent.resolve() == cache_root().resolve():
            return name
    parts = path.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3][len("models--") :].replace("--", "/")
    return text


def save_portable_files(output_dir: str | Path, model, processor=None) -> None:
    """Makes a saved model usable on another machine and by CTranslate2 / faster-whisper.

    The adapter's `base_model_name_or_path` is rewritten from this machine's cache folder to the
    portable name (`portable_model_name`); `preprocessor_config.json` (the feature extractor) is
    written too, since transformers 5 saves the processor as processor_config.json only and the
    CTranslate2 converter and faster-whisper read preprocessor_config.json.
    """
    output_dir = Path(output_dir)
    config_path = output_dir / ADAPTER_CONFIG
    peft_config = getattr(model, "peft_config", {}).get("default")
    if peft_config is not None and peft_config.base_model_name_or_path:
        peft_config.base_model_name_or_path = portable_model_name(peft_config.base_model_name_or_path)
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        if config.get("base_model_name_or_path"):
            config["base_model_name_or_path"] = portable_model_name(config["base_model_name_or_path"])
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    feature_extractor = getattr(processor, "feature_extractor", None)
    if feature_extractor is not None:
        feature_extractor.save_pretrained(output_dir)


def is_multilingual(processor_or_tokenizer) -> bool:
    """True when the tokenizer has language tokens (prompts need <|lang|><|task|>)."""
    return transcript_encoder(processor_or_tokenizer).multilingual


def default_device() -> str:
    """The first CUDA GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"
