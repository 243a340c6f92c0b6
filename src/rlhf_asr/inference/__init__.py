"""Decoding and teacher-forced scoring shared by mining, the demo, evaluation and `rlhf-asr transcribe`."""
