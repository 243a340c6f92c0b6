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
        assert not torch.allclose(
            base(input_features=features, decoder_input_ids=ids).logits,
            adapted(input_features=features, decoder_input_ids=ids).logits,
        )


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


# ---- loading for training ----


def test_fp16_checkpoint_loads_for_training_in_fp32(model_dir, tmp_path):
    """large-v3 and turbo are stored in fp16; fp16 trainable weights break fp16 mixed precision."""
    from rlhf_asr.model.peft_setup import load_training_model

    WhisperForConditionalGeneration.from_pretrained(model_dir).half().save_pretrained(tmp_path / "fp16")
    model = load_training_model(str(tmp_path / "fp16"))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert load_training_model(str(tmp_path / "fp16"), dtype="bfloat16").dtype == torch.bfloat16  # when asked


def test_8bit_device_map_follows_local_rank(model_dir, monkeypatch):
    """Under torchrun each process must load onto its own GPU, not all onto GPU 0."""
    from rlhf_asr.model import peft_setup

    seen = {}

    class Stop(Exception):
        pass

    def fake_from_pretrained(cls, source, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(peft_setup, "eight_bit_available", lambda: True)
    monkeypatch.setattr(WhisperForConditionalGeneration, "from_pretrained", classmethod(fake_from_pretrained))
    for rank in ("3", "0"):
        monkeypatch.setenv("LOCAL_RANK", rank)
        with pytest.raises(Stop):
            peft_setup.load_training_model(str(model_dir), use_8bit=True)
        assert seen["device_map"] == {"": int(rank)}
    monkeypatch.delenv("LOCAL_RANK")
    with pytest.raises(Stop):
        peft_setup.load_training_model(str(model_dir), use_8bit=True)
    assert seen["device_map"] == {"": 0}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_accepted_attention_keeps_the_packed_blocks_apart(model_dir, attn):
    """Every accepted --attn_implementation honours the block mask: rejected log-probs ignore chosen."""
    from rlhf_asr.model.engine import PreferenceWhisper
    from rlhf_asr.model.peft_setup import load_training_model
    from rlhf_asr.trainer.config import ATTN_IMPLEMENTATIONS

    assert attn in ATTN_IMPLEMENTATIONS
    engine = PreferenceWhisper(load_training_model(str(model_dir), attn).eval(), mode="packed")
    features = torch.randn(2, 80, 3000)
    rejected = torch.tensor([[50257, 50362, 11, 12, 13], [50257, 50362, 21, 22, 50256]])
    rejected_labels = torch.tensor([[50362, 11, 12, 13, 50256], [50362, 21, 22, 50256, -100]])

    def rejected_logps(chosen):
        labels = torch.cat([chosen[:, 1:], torch.full((2, 1), 50256)], dim=1)
        with torch.no_grad():
            return engine(features, chosen, labels, rejected, rejected_labels)["rejected_logps"]

    a = rejected_logps(torch.tensor([[50257, 50362, 100, 101], [50257, 50362, 200, 201]]))
    b = rejected_logps(torch.tensor([[50257, 50362, 300, 301], [50257, 50362, 400, 401]]))
    torch.testing.assert_close(a, b)
    full = engine.model(input_features=features, decoder_input_ids=rejected).logits.log_softmax(-1)
    keep = rejected_labels != -100
    expected = (full.gather(-1, rejected_labels.clamp(min=0)[..., None])[..., 0] * keep).sum(-1)
    torch.testing.assert_close(a, expected, rtol=1e-4, atol=1e-4)


# ---- portable outputs ----


def test_portable_model_name(tmp_path, monkeypatch):
    from rlhf_asr.model.loading import portable_model_name

    monkeypatch.setenv("RLHF_ASR_CACHE", str(tmp_path / "cache"))
    assert portable_model_name(str(tmp_path / "cache" / "whisper-tiny.en")) == "tiny.en"
    assert portable_model_name(str(tmp_path / "cache" / "whisper-base")) == "base"
    snapshot = tmp_path / "hub" / "models--openai--whisper-large-v3" / "snapshots" / "abc123"
    assert portable_model_name(str(snapshot)) == "openai/whisper-large-v3"
    assert portable_model_name("runs/my-model") == "runs/my-model"  # the folder as given
    assert portable_model_name(str(tmp_path / "mine")) == str(tmp_path / "mine")


# ---- quiet logs ----


def test_loading_and_generating_is_quiet(model_dir, tmp_path, caplog):
    """No FutureWarning per adapter load, no 'Both max_new_tokens and max_length' per generate call."""
    import logging
    import warnings

    from transformers import GenerationMixin
    from transformers.modeling_outputs import BaseModelOutput

    from rlhf_asr.model.loading import limit_new_tokens

    adapter = _save_adapter(model_dir, tmp_path / "adapter")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        model, _ = load_for_inference(adapter)
        limit_new_tokens(model, 5)
        core = model.get_base_model()
        hidden = core.model.encoder(torch.randn(1, 80, 3000)).last_hidden_state
        with torch.no_grad():
            out = GenerationMixin.generate(
                core,
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                decoder_input_ids=torch.tensor([[50257, 50362]]),
            )
    assert out.shape[1] <= 2 + 5
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
