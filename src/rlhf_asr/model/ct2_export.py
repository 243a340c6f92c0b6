"""Export a Hugging Face Whisper (base, merged or adapter folder) to a CTranslate2 folder.

The reverse of `model/ct2.py`, done by the `ctranslate2` package's own converter
(`TransformersConverter`), so the output is exactly what CTranslate2 and faster-whisper expect.
What is ours: an adapter is merged first (into a temporary folder) since CTranslate2 has no
adapters; the processor files faster-whisper reads (`tokenizer.json`, `preprocessor_config.json`),
the ones `WhisperProcessor.from_pretrained` reads, and the generation config are written beside
`model.bin`, so the folder is self-contained for faster-whisper and for the ct2 backend here; and
the folder appears whole or not at all (staged, then moved into place).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from rlhf_asr.errors import UserInputError

log = logging.getLogger(__name__)

# Weight types CTranslate2 stores; int8 is what faster-whisper users run on CPU.
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "float16", "float32")
CT2_WEIGHTS = "model.bin"


def is_ct2_folder(path: str | Path) -> bool:
    """A folder holding a CTranslate2 model (`model.bin`)."""
    return (Path(path).expanduser() / CT2_WEIGHTS).is_file()


def check_quantization(quantization: str) -> str:
    if quantization not in QUANTIZATIONS:
        raise UserInputError(f"--quantization {quantization!r}: choose from {', '.join(QUANTIZATIONS)}")
    return quantization


def check_output_folder(output: str | Path) -> Path:
    """OUT must be new or an empty folder: checked before any model is loaded."""
    output = Path(output).expanduser()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserInputError(f"{output}: already exists and is not an empty folder")
    return output


def export_ct2(model: str | Path, output: str | Path, quantization: str = "int8") -> Path:
    """Write `model` (folder, adapter, hub id or bundled name) as a CTranslate2 Whisper to `output`."""
    from rlhf_asr.model.loading import is_adapter_folder, load_processor, resolve_model_source
    from rlhf_asr.trainer.validate import check_model_folder

    check_quantization(quantization)
    output = check_output_folder(output)
    source = Path(resolve_model_source(model))
    check_model_folder(str(source), "model")  # else a folder of audio reads as a failed hub download
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ct2-export-", dir=output.parent) as scratch:
        if is_adapter_folder(source):
            from rlhf_asr.model.merge import merge_adapter

            log.info("merging adapter %s into its base first", source)
            source = merge_adapter(source, Path(scratch) / "merged")
        processor = load_processor(source)
        staging = Path(scratch) / "ct2"
        _convert(source, staging, quantization)
        processor.save_pretrained(staging)  # tokenizer.json, tokenizer_config.json, processor_config.json
        processor.feature_extractor.save_pretrained(staging)  # preprocessor_config.json (faster-whisper)
        _save_generation_config(source, staging)
        if output.exists():
            output.rmdir()  # empty, checked above
        shutil.move(str(staging), str(output))
    return output


def _save_generation_config(source: Path, staging: Path) -> None:
    """The model's generation config (beam width, length limit), which the ct2 backend decodes with."""
    from transformers import GenerationConfig

    if (source / "generation_config.json").is_file():
        GenerationConfig.from_pretrained(source).save_pretrained(staging)


def _convert(source: Path, staging: Path, quantization: str) -> None:
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        raise UserInputError("export-ct2 needs the ctranslate2 package: pip install ctranslate2") from None
    try:
        TransformersConverter(str(source)).convert(str(staging), quantization=quantization)
    except (ValueError, OSError) as error:  # not a Whisper folder, unreadable weights
        raise UserInputError(f"{source}: CTranslate2 conversion failed ({error})") from None
