"""ORPO preference fine-tuning for Whisper, with one encoder pass per audio batch.

Flow: data (manifests, audio, batches) -> model (loading, the shared-encoder engine)
-> loss (ORPO maths) -> trainer (Hugging Face Trainer subclass) -> commands (CLI). The studies
(`rlhf_asr.studies`: the demo, the results studies, the benchmarks) sit beside the library and use it.

The Python API (`rlhf_asr/api.py`): `from rlhf_asr import train, evaluate, transcribe, make_pairs,
load_model`. Its names load on first use, so `import rlhf_asr` (and `rlhf-asr --help`) stays light.
"""

__version__ = "0.1.0"

API = ("Columns", "DataSource", "LoadedModel", "evaluate", "load_model", "make_pairs", "train", "transcribe")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from rlhf_asr import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlhf_asr' has no attribute {name!r}")
