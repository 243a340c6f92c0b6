"""The encoder cache serves an output only for the same audio through the same encoder, in the same mode."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import WhisperForConditionalGeneration

from rlhf_asr.model.encoder_cache import EncoderCache, audio_key, encoder_fingerprint
from rlhf_asr.model.engine import PreferenceWhisper
from rlhf_asr.model.peft_setup import target_module_pattern
from whisper_fixtures import tiny_whisper_config, write_tone


def test_audio_key_names_the_file_and_its_content(tmp_path, monkeypatch):
    a = write_tone(tmp_path / "a.wav", seed=0)
    b = write_tone(tmp_path / "b.wav", seed=0)  # same samples, another file
    monkeypatch.chdir(tmp_path)
    assert audio_key("a.wav") == audio_key(a) == audio_key(tmp_path / "." / "a.wav")
    assert audio_key(a) != audio_key(b)
    before = audio_key(a)
    write_tone(a, seconds=2.0, seed=1)  # rewritten in place
    os.utime(a, ns=(1, 1))  # even within the file system's timestamp resolution, size and mtime differ
    assert audio_key(a) != before


FRAMES = 200  # a short input window keeps the encoder fast; the cache does not care


def _model(seed: int) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    return WhisperForConditionalGeneration(tiny_whisper_config(max_source_positions=FRAMES // 2))


def test_encoder_fingerprint_follows_the_encoder_weights_only():
    base = _model(0)
    same = _model(0)
    assert encoder_fingerprint(base) == encoder_fingerprint(same)
    assert encoder_fingerprint(base) != encoder_fingerprint(_model(1))  # another checkpoint
    with torch.no_grad():
        same.model.encoder.layers[0].fc1.weight[0, 0] += 1e-3  # another fine-tuned encoder
    assert encoder_fingerprint(base) != encoder_fingerprint(same)
    assert encoder_fingerprint(base) != encoder_fingerprint(_model(0).to(torch.bfloat16))
    # The decoder is what training changes: a decoder-only LoRA leaves the fingerprint as it is,
    # so the demo's outputs from the plain base model serve the adapter run.
    lora = get_peft_model(_model(0), LoraConfig(r=4, target_modules=target_module_pattern(["q_proj", "fc1"], True)))
    assert encoder_fingerprint(lora) == encoder_fingerprint(base)


def test_training_entries_never_serve_evaluation_or_another_model():
    model = _model(0)
    cache = EncoderCache()
    train_audio, test_audio = torch.randn(2, 80, FRAMES), torch.randn(2, 80, FRAMES)
    keys = torch.tensor([0, 1])  # as if both sets held files with these keys (positions, before)
    engine = PreferenceWhisper(model, freeze_encoder=True, encoder_cache=cache).train()
    engine.encode(train_audio, keys)
    engine.eval()
    with torch.no_grad():
        served = engine.encode(test_audio, keys)
        expected = model.model.encoder(test_audio).last_hidden_state
    torch.testing.assert_close(served, expected)
    other = PreferenceWhisper(_model(1), freeze_encoder=True, encoder_cache=cache).train()
    other.encode(train_audio, keys)
    assert cache.hits == 0 and cache.misses == 6
    engine.train()
    torch.testing.assert_close(
        engine.encode(torch.zeros(2, 80, FRAMES), keys), model.model.encoder(train_audio).last_hidden_state
    )
    assert cache.hits == 2


class _Payload:
    def __reduce__(self):
        return (os.getenv, ("HOME",))


def test_disk_entries_are_read_as_weights_only(tmp_path, tiny_model):
    cache = EncoderCache(directory=tmp_path)
    path = tmp_path / "m" / "train" / f"{7:016x}.pt"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as file:
        pickle.dump(_Payload(), file)
    with pytest.raises(pickle.UnpicklingError):
        cache.get_or_compute("m", torch.tensor([7]), torch.randn(1, 80, 3000), tiny_model.model.encoder, "train")


def test_demo_hands_training_outputs_under_the_keys_training_asks_for(tmp_path):
    from rlhf_asr.data.dataset import PreferenceDataset
    from rlhf_asr.data.manifest import read_preference_manifest
    from rlhf_asr.data.tokens import TranscriptEncoder
    from rlhf_asr.studies.corpus import Corpus, Utterance
    from rlhf_asr.studies.stages import make_pairs
    from whisper_fixtures import tiny_processor

    texts = ["the cat sat on the mat", "hello there world", "open the window please"]
    rows = [Utterance(text, "en-us", 160, f"clips/{i}.wav", 1.0, "train") for i, text in enumerate(texts)]
    for i, row in enumerate(rows):
        write_tone(tmp_path / row.path, 1.0, 300 + 50 * i, seed=i)
    hypotheses = ["the cat sat on the mat", "hello their world", "open the widow please"]  # row 0 is right
    model = _model(0)
    hidden = torch.randn(3, 1500, 32)  # as the demo's encoder pass gives them (never recomputed here)
    _, pairs, cache = make_pairs(Corpus(tmp_path, {"train": rows}), hypotheses, hidden, model)
    assert [index for index, _ in pairs] == [1, 2]

    processor = tiny_processor()
    report = read_preference_manifest(tmp_path / "pairs.jsonl", min_duration=0.5, max_duration=30.0)
    dataset = PreferenceDataset(report.examples, processor.feature_extractor, TranscriptEncoder(processor.tokenizer))
    items = [dataset[i] for i in range(len(dataset))]
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=target_module_pattern(["q_proj", "fc1"], True)))
    engine = PreferenceWhisper(lora, freeze_encoder=True, encoder_cache=cache).train()
    features = torch.stack([torch.from_numpy(item["input_features"]) for item in items])
    served = engine.encode(features, torch.tensor([item["index"] for item in items]))
    assert (cache.hits, cache.misses) == (2, 0)
    torch.testing.assert_close(served, hidden[1:])
