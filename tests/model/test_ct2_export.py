"""export-ct2: CTranslate2's converter, adapters merged first, files faster-whisper reads, exact round trip."""

from __future__ import annotations

import json
import typing

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer
from transformers import WhisperForConditionalGeneration

from rlhf_asr.commands.cli import main as cli_main
from rlhf_asr.commands.export_ct2 import ExportCT2Options, parse_args
from rlhf_asr.errors import UserInputError
from rlhf_asr.model.ct2 import convert_ct2
from rlhf_asr.model.ct2_export import QUANTIZATIONS, export_ct2
from whisper_fixtures import make_tiny_whisper_dir

pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_whisper_dir(tmp_path_factory.mktemp("export"))


def _state(folder):
    return WhisperForConditionalGeneration.from_pretrained(folder).state_dict()


@pytest.mark.parametrize("quantization, tolerance", [("float32", 0.0), ("float16", 1e-3)])
def test_import_of_an_export_gives_back_the_weights(model_dir, tmp_path, quantization, tolerance):
    """The tiny model's zero biases and unit gains are equal arrays, which CTranslate2 stores once as aliases."""
    exported = export_ct2(model_dir, tmp_path / "ct2", quantization)
    back = convert_ct2(exported, tmp_path / "back")
    before, after = _state(model_dir), _state(back)
    assert set(before) == set(after)
    for name, tensor in before.items():
        assert torch.allclose(after[name], tensor, atol=tolerance, rtol=tolerance), name


def test_the_folder_has_what_faster_whisper_reads(model_dir, tmp_path):
    exported = export_ct2(model_dir, tmp_path / "ct2", "int8")
    config = json.loads((exported / "config.json").read_text())
    assert {"suppress_ids", "suppress_ids_begin", "lang_ids", "alignment_heads"} <= set(config)
    features = json.loads((exported / "preprocessor_config.json").read_text())
    assert features["feature_size"] == 80 and features["sampling_rate"] == 16000
    tokenizer = Tokenizer.from_file(str(exported / "tokenizer.json"))  # what faster-whisper does
    assert tokenizer.token_to_id("<|startoftranscript|>") == 50257
    assert json.loads((exported / "generation_config.json").read_text())["max_length"] == 16
    with pytest.raises(UserInputError, match="quantized"):  # int8 really is int8
        convert_ct2(exported, tmp_path / "back")


def test_an_adapter_is_merged_first(model_dir, tmp_path):
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"], init_lora_weights=False)
    peft_model = get_peft_model(WhisperForConditionalGeneration.from_pretrained(model_dir), config)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = peft_model.merge_and_unload().state_dict()
    back = _state(convert_ct2(export_ct2(tmp_path / "adapter", tmp_path / "ct2", "float32"), tmp_path / "back"))
    name = "model.encoder.layers.0.fc1.weight"
    assert torch.allclose(back[name], merged[name])
    assert not torch.allclose(back[name], _state(model_dir)[name])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["adapter", "back", "ct2"]  # no merged leftovers


def test_command(model_dir, tmp_path, capsys):
    assert cli_main(["export-ct2", str(model_dir), str(tmp_path / "out"), "--quantization", "float16"]) == 0
    assert "model.bin" in capsys.readouterr().out
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert cli_main(["export-ct2", str(model_dir), str(tmp_path / "full")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert cli_main(["export-ct2", str(model_dir), str(tmp_path / "q"), "--quantization", "int4"]) == 2
    assert not (tmp_path / "q").exists()


def test_options():
    assert parse_args(["--model", "m", "--output_dir", "o"]) == ExportCT2Options("m", "o", "int8")
    assert parse_args(["m", "o"]).output_dir == "o"
    with pytest.raises(UserInputError, match="required"):
        parse_args([])
    choices = typing.get_args(typing.get_type_hints(ExportCT2Options)["quantization"])
    assert choices == QUANTIZATIONS
