"""`studies/stages.py`: the studies' decoding gives `generate`'s transcripts."""

from __future__ import annotations


def test_demo_decoding_equals_generate_despite_its_token_cap(tmp_path, monkeypatch):
    """The demo caps new tokens for speed; rows the cap cuts are decoded again, so its WER is generate's."""
    import numpy as np

    from rlhf_asr.inference.decode import encode_audio, transcribe_batch
    from rlhf_asr.model.loading import load_for_inference
    from rlhf_asr.studies import stages as demo
    from whisper_fixtures import make_tiny_whisper_dir

    folder = make_tiny_whisper_dir(tmp_path, max_length=12)  # a random model runs to max_length: never finishes
    monkeypatch.setattr(demo, "MAX_NEW_TOKENS", 4)
    model, processor = demo.load_decoding_model(folder)
    rng = np.random.default_rng(0)
    audios = [rng.standard_normal(8000).astype(np.float32) * 0.1 for _ in range(3)]
    hidden = encode_audio(model, processor, audios)
    ours = demo.decode_hidden(model, processor, hidden, [0.5, 0.5, 0.5], batch_size=2)
    plain, _ = load_for_inference(folder)
    assert ours == transcribe_batch(plain, processor, audios, batch_size=3)
