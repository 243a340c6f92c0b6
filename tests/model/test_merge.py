"""Merging LoRA / AdaLoRA adapters: same logits as the adapter, a folder `pipeline` can run."""

from __future__ import annotations

import json

import pytest
import soundfile
import torch
from peft import AdaLoraConfig, LoraConfig, get_peft_model
from transformers import WhisperForConditionalGeneration, pipeline

from rlhf_asr.commands import cli
from rlhf_asr.errors import UserInputError
from rlhf_asr.inference.decode import transcribe_batch
from rlhf_asr.model.loading import load_for_inference
from rlhf_asr.model.merge import merge_adapter
from whisper_fixtures import make_tiny_whisper_dir, write_tone


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_whisper_dir(tmp_path_factory.mktemp("merge"))


def _adapter(model_dir, target, config):
    torch.manual_seed(1)
    base = WhisperForConditionalGeneration.from_pretrained(model_dir)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(target)
    return target


def _lora():
    # init_lora_weights=False: random, nonzero B, so the adapter really changes the model
    return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"], init_lora_weights=False)


def _logits(model, features, ids):
    with torch.no_grad():
        return model(input_features=features, decoder_input_ids=ids).logits


def test_lora_merge_keeps_the_logits_and_runs_in_a_pipeline(model_dir, tmp_path):
    adapter = _adapter(model_dir, tmp_path / "adapter", _lora())
    merged_dir = merge_adapter(adapter, tmp_path / "merged")
    names = {p.name for p in merged_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= names
    # transformers 5 writes processor_config.json; CTranslate2's converter and faster-whisper read the other
    assert {"processor_config.json", "preprocessor_config.json"} <= names
    assert not (merged_dir / "adapter_config.json").exists()

    peft_model, _ = load_for_inference(adapter)
    merged, processor = load_for_inference(merged_dir)
    base, _ = load_for_inference(model_dir)
    assert type(merged) is WhisperForConditionalGeneration
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[50257, 50362, 464, 3797], [50257, 50362, 31373, 995]])
    expected = _logits(peft_model, features, ids)
    torch.testing.assert_close(_logits(merged, features, ids), expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(_logits(base, features, ids), expected, atol=1e-3)

    wav = write_tone(tmp_path / "tone.wav", 1.0)
    audio, rate = soundfile.read(str(wav), dtype="float32")
    # our decoding through the PeftModel and through the merged model agree
    assert transcribe_batch(peft_model, processor, [audio]) == transcribe_batch(merged, processor, [audio])
    asr = pipeline("automatic-speech-recognition", model=str(merged_dir), device="cpu")
    result = asr({"raw": audio, "sampling_rate": rate})
    assert isinstance(result["text"], str)


def test_adalora_merge_keeps_the_logits(model_dir, tmp_path):
    config = AdaLoraConfig(init_r=4, target_r=2, total_step=10, target_modules=["q_proj", "v_proj"])
    adapter = tmp_path / "adalora"
    torch.manual_seed(2)
    base = WhisperForConditionalGeneration.from_pretrained(model_dir)
    peft_model = get_peft_model(base, config)
    with torch.no_grad():  # AdaLoRA starts with B = 0: give it weights so merging matters
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or "lora_E" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(adapter)
    merged_dir = merge_adapter(adapter, tmp_path / "merged")
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[50257, 50362, 464]])
    adapted, _ = load_for_inference(adapter)
    merged, _ = load_for_inference(merged_dir)
    base_model, _ = load_for_inference(model_dir)
    expected = _logits(adapted, features, ids)
    torch.testing.assert_close(_logits(merged, features, ids), expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(_logits(base_model, features, ids), expected, atol=1e-3)


def test_not_an_adapter_folder(model_dir, tmp_path):
    with pytest.raises(UserInputError, match="not an adapter folder"):
        merge_adapter(model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_base_model_unavailable(model_dir, tmp_path):
    adapter = _adapter(model_dir, tmp_path / "adapter", _lora())
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match="base model"):
        merge_adapter(adapter, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_empty_output_is_refused(model_dir, tmp_path):
    adapter = _adapter(model_dir, tmp_path / "adapter", _lora())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not an empty folder"):
        merge_adapter(adapter, tmp_path / "out")


def test_merge_command(model_dir, tmp_path, capsys):
    adapter = _adapter(model_dir, tmp_path / "adapter", _lora())
    assert cli.main(["merge", str(adapter), str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert "merged model written" in capsys.readouterr().err  # a log line (stderr)
    assert cli.main(["merge", str(model_dir), str(tmp_path / "other")]) == 2
    assert "not an adapter folder" in capsys.readouterr().err
