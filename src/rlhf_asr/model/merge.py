"""Fold a LoRA / AdaLoRA adapter into its base model and save a plain Whisper folder.

A merged folder needs neither peft nor the base checkpoint: `transformers.pipeline`,
CTranslate2 converters and other tools load it as any Whisper model, and inference pays no
adapter overhead. The processor and generation config travel with it so it is self-contained.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rlhf_asr.errors import UserInputError
from rlhf_asr.model.loading import (
    ADAPTER_CONFIG,
    is_adapter_folder,
    load_for_inference,
    resolve_model_source,
    save_portable_files,
)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def check_finite_adapter(adapter_dir: Path) -> None:
    """Refuses an adapter with NaN/inf values (a diverged run): merged, it would make every output NaN."""
    import torch
    from safetensors.torch import load_file

    file = adapter_dir / ADAPTER_WEIGHTS
    if not file.is_file():
        return  # a .bin adapter: PEFT loads and checks it
    try:
        tensors = load_file(str(file))
    except Exception as error:  # SafetensorError: truncated or corrupt
        raise UserInputError(f"{file}: truncated or corrupt safetensors file ({error})") from None
    bad = [name for name, tensor in tensors.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise UserInputError(
            f"{file}: {len(bad)} of {len(tensors)} adapter tensors hold NaN/inf (e.g. {bad[0]}); the run that "
            "wrote it diverged, so it is not merged. Retrain with a lower --learning_rate"
        )


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path) -> Path:
    """Write base + adapter, merged, to `output_dir` (which must be new or empty); returns it."""
    source = Path(resolve_model_source(adapter_dir))
    if not is_adapter_folder(source):
        raise UserInputError(f"{adapter_dir} is not an adapter folder (no {ADAPTER_CONFIG}); nothing to merge")
    check_finite_adapter(source)
    output = Path(output_dir).expanduser()
    if output.resolve() == source.resolve():
        raise UserInputError("the output folder must differ from the adapter folder")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserInputError(f"{output}: already exists and is not an empty folder")
    model, processor = load_for_inference(source)
    merged = model.merge_and_unload()  # LoRA and AdaLoRA both implement it
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    try:
        merged.save_pretrained(output)  # safetensors weights, config, generation_config.json
        processor.save_pretrained(output)
        save_portable_files(output, merged, processor)  # preprocessor_config.json, read by CTranslate2/faster-whisper
    except BaseException:
        if created:
            shutil.rmtree(output, ignore_errors=True)
        raise
    return output
