"""Resolving and loading checkpoints: folders, adapters, the HF cache, bundled names, offline hub ids."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import WhisperForConditionalGeneration

from rlhf_asr.errors import UserInputError
from rlhf_asr.model import loading
from rlhf_asr.model.loading import is_multilingual, load_for_inference, load_processor, resolve_model_source
from whisper_fixtures import make_tiny_whisper_dir, tiny_processor


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_whisper_dir(tmp_path_factory.mktemp("models"))


def _save_adapter(model_dir, target, with_processor=False):
    base = WhisperForConditionalGeneration.from_pretrained(model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(target)
    if with_processor:
        tiny_processor("tiny.en").save_pretrained(target)
    return target


def test_local_folder_is_used_as_is(model_dir):
    assert resolve_model_source(model_dir) == str(model_dir)


@pytest.mark.parametrize("name", ["./no/such/model", "~/no-such-model-folder", "/no/such/model", "runs/a/b"])
def test_missing_path_is_a_user_error(name):
    with pytest.raises(UserInputError, match="model path does not exist"):
        resolve_model_source(name)


def test_file_instead_of_folder(tmp_path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(UserInputError, match="is a file"):
        resolve_model_source(file)


def test_offline_hub_id_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(UserInputError) as caught:
        resolve_model_source("rlhf-asr-tests/not-a-cached-model")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "not a local folder and is not in the Hugging Face cache" in message
    assert "offline" in message and "rlhf-asr import-ct2 tiny.en DIR" in message


def test_hub_id_found_in_the_cache(model_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "models--someone--tiny-whisper"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_source("someone/tiny-whisper") == str(snapshot)
    model, _ = load_for_inference("someone/tiny-whisper")
    assert isinstance(model, WhisperForConditionalGeneration)


def test_bundled_names_use_the_bundled_model(model_dir, monkeypatch):
    from rlhf_asr.model import bundled

    calls = []
    monkeypatch.setattr(bundled, "ensure_bundled_model", lambda name: calls.append(name) or model_dir)
    assert resolve_model_source("tiny.en") == str(model_dir)
    assert calls == ["tiny.en"]


def test_load_base_folder(model_dir):
    model, processor = load_for_inference(model_dir)
    assert isinstance(model, WhisperForConditionalGeneration) and not model.training
    assert processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>") == 50257


def test_load_adapter_without_processor_takes_the_base_one(model_dir, tmp_path):
    adapter = _save_adapter(model_dir, tmp_path / "adapter")
    model, processor = load_for_inference(adapter)
    assert isinstance(model, PeftModel) and not model.training
    assert len(processor.tokenizer) == 51864
    assert load_processor(adapter).tokenizer.eos_token_id == 50256


def test_adapter_changes_the_output(model_dir, tmp_path):
    adapter = _save_adapter(model_dir, tmp_path / "adapter")
    base, _ = load_for_inference(model_dir)
    adapted, _ = load_for_inference(adapter)
    features = torch.randn(1, 80, 3000)
    ids = torch.tensor([[50257, 50362]])
    with torch.no_grad():
        assert not torch.allclose(base(input_features=features, decoder_input_ids=ids).logits,
                                  adapted(input_features=features, decoder_input_ids=ids).logits)


def test_adapter_with_missing_base_is_a_user_error(model_dir, tmp_path):
    adapter = _save_adapter(model_dir, tmp_path / "adapter", with_processor=True)
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "moved-away")
    config_path.write_text(json.dumps(config))
    with pytest.raises(UserInputError, match="base model of adapter .* is unavailable"):
        load_for_inference(adapter)


def test_folder_without_weights_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="not a loadable Whisper checkpoint"):
        load_for_inference(tmp_path / "empty")


def test_dtype_argument(model_dir):
    model, _ = load_for_inference(model_dir, dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    with pytest.raises(UserInputError, match="unknown dtype"):
        load_for_inference(model_dir, dtype="float7")


def test_is_multilingual():
    assert not is_multilingual(tiny_processor("tiny.en"))
    assert is_multilingual(tiny_processor("base"))
    assert is_multilingual(tiny_processor("base").tokenizer)


def test_offline_detection_reads_the_environment(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loading._offline()
