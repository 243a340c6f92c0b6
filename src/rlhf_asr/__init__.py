"""ORPO preference fine-tuning for Whisper, with one encoder pass per audio batch.

Flow: data (manifests, audio, batches) -> model (loading, the shared-encoder engine)
-> loss (ORPO maths) -> trainer (Hugging Face Trainer subclass) -> commands (CLI).
"""

__version__ = "0.1.0"
