"""A model trained on no-speech pairs can write nothing where it is deployed (model/empty_output.py):
the saved generation config lets <|endoftext|> come first, in the adapter, the merged folder and the
CTranslate2 export, and `transformers.pipeline` and faster-whisper, each at its defaults, then write "".

The behaviour is checked on a tiny model rigged to predict <|endoftext|> at every position (the
decoder's last layer norm gives one constant state, which <|endoftext|>'s row scores highest): a
decoder that forbids ending first must write a token, one that allows it writes nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import GenerationConfig, WhisperForConditionalGeneration, WhisperProcessor, pipeline

from rlhf_asr.model.empty_output import GENERATION_CONFIG, allow_empty_output
from rlhf_asr.model.loading import load_for_inference
from train_fixtures import PAIRS, train, write_manifest
from whisper_fixtures import make_tiny_whisper_dir

SILENCE = np.zeros(16000 * 2, dtype=np.float32)


def _rig_to_end(folder, out):
    """A copy of the model at `folder` whose decoder wants <|endoftext|> at every step."""
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    processor = WhisperProcessor.from_pretrained(folder)
    eot = processor.tokenizer.eos_token_id
    with torch.no_grad():
        norm = model.model.decoder.layer_norm
        state = torch.randn(norm.bias.shape, generator=torch.Generator().manual_seed(0))
        norm.weight.zero_()
        norm.bias.copy_(state)
        model.proj_out.weight[eot] = 50 * state / state.norm()  # tied with the embedding; only eot's row
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out, eot


@pytest.fixture(scope="module")
def rigged(tmp_path_factory):
    root = tmp_path_factory.mktemp("empty_output")
    suppressed, eot = _rig_to_end(make_tiny_whisper_dir(root), root / "suppressed")
    model = WhisperForConditionalGeneration.from_pretrained(suppressed)
    assert allow_empty_output(model, eot)
    allowed = root / "allowed"
    model.save_pretrained(allowed)
    WhisperProcessor.from_pretrained(suppressed).save_pretrained(allowed)
    return root, suppressed, allowed, eot


def _pipeline_text(folder) -> str:
    asr = pipeline("automatic-speech-recognition", model=str(folder), device="cpu")
    return asr(SILENCE.copy())["text"].strip()  # the pipeline's own defaults (5 beams)


def test_the_pipeline_writes_nothing_only_when_the_config_lets_it(rigged):
    _, suppressed, allowed, eot = rigged
    assert _pipeline_text(suppressed) != ""  # ending first is forbidden: one token at least
    assert _pipeline_text(allowed) == ""
    assert GenerationConfig.from_pretrained(allowed).begin_suppress_tokens == [220]


def test_the_ct2_export_carries_it_to_faster_whisper(rigged):
    faster_whisper = pytest.importorskip("faster_whisper")
    from rlhf_asr.model.ct2_export import export_ct2

    root, suppressed, allowed, eot = rigged
    texts = {}
    for name, folder in (("suppressed", suppressed), ("allowed", allowed)):
        out = export_ct2(folder, root / f"ct2_{name}", quantization="float32")
        begin = json.loads((out / "config.json").read_text())["suppress_ids_begin"]
        assert (eot in begin) == (name == "suppressed")
        fw = faster_whisper.WhisperModel(str(out), device="cpu")
        plain = fw.transcribe(SILENCE, without_timestamps=True, vad_filter=False)[0]  # suppress_blank on
        texts[name] = ("".join(s.text for s in plain).strip(), "".join(s.text for s in fw.transcribe(SILENCE)[0]))
    assert texts["suppressed"][0] != "" and texts["allowed"][0] == ""
    assert texts["allowed"][1].strip() == ""  # faster-whisper's defaults


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_empty")
    model = make_tiny_whisper_dir(root)
    mixed = write_manifest(root, "mixed", [*PAIRS[:3], ("", "you"), ("", "thank you for watching")])
    speech = write_manifest(root, "speech", PAIRS[:3], tone=20)
    out = {}
    for name, data, extra in (
        ("eot", mixed, ["--merge_at_end"]),
        ("nospeech", mixed, ["--nospeech_target", "nospeech"]),
        ("speech", speech, []),
    ):
        out[name] = root / name
        train({"model": model, "train": data}, out[name], "--max_steps", "1", *extra)
    return out


def _begin(folder):
    return json.loads((folder / GENERATION_CONFIG).read_text())["begin_suppress_tokens"]


def test_training_on_no_speech_pairs_saves_a_config_that_lets_the_model_end_first(runs):
    eot = 50256  # tiny.en's <|endoftext|>
    assert _begin(runs["eot"]) == [220] and _begin(runs["eot"] / "merged") == [220]
    model, _ = load_for_inference(runs["eot"])  # the adapter decodes with the config saved beside it
    assert model.generation_config.begin_suppress_tokens == [220]
    card = (runs["eot"] / "README.md").read_text()
    assert "lets `<|endoftext|>` come first" in card and "faster-whisper" in card
    for name in ("nospeech", "speech"):  # Whisper's rule kept: the target leaves it, or there was no silence
        assert _begin(runs[name]) == [220, eot], name
        assert load_for_inference(runs[name])[0].generation_config.begin_suppress_tokens == [220, eot]
    assert "<|nospeech|>" in (runs["nospeech"] / "README.md").read_text()
    assert "speech pairs only" in (runs["speech"] / "README.md").read_text()
