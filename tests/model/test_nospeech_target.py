"""The no-speech target (data/nospeech_target.py): what a no-speech pair's chosen is, through the
encoder, the collator and the packed engine (equal to the two-pass forward), and what it leaves
in the saved generation config (model/empty_output.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import WhisperForConditionalGeneration

from rlhf_asr.data.collator import IGNORE_INDEX, PreferenceCollator
from rlhf_asr.data.dataset import encode_pair
from rlhf_asr.data.nospeech_target import TARGETS, nospeech_target
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.loss.orpo import preference_loss
from rlhf_asr.model.bundled import bundled_processor
from rlhf_asr.model.empty_output import allow_empty_output, lets_empty_output
from rlhf_asr.model.engine import PreferenceWhisper
from whisper_fixtures import make_tiny_model, tiny_whisper_config

PAIRS = [  # (chosen, rejected): two no-speech pairs against hallucinations, one speech pair
    ("", "you"),
    ("", "Thank you for watching. Please subscribe to the channel and ring the bell."),
    ("the cat sat on the mat", "the cat sat on a hat"),
]


def _encoder(target: str, name: str = "tiny.en") -> TranscriptEncoder:
    return TranscriptEncoder(bundled_processor(name).tokenizer, nospeech=target)


def _example(chosen: str, rejected: str):
    return SimpleNamespace(chosen=chosen, rejected=rejected, chosen_segments=None, rejected_segments=None)


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_each_target_builds_its_chosen_and_leaves_the_rejected(name):
    vocab = bundled_processor(name).tokenizer.get_vocab()
    no_speech = vocab.get("<|nospeech|>", vocab.get("<|nocaptions|>"))
    language = "en" if name == "base" else None
    for target in TARGETS:
        encoder = _encoder(target, name)
        chosen, rejected = encode_pair(_example("", ""), encoder, language)
        prompt = encoder.prefix(language)
        assert rejected.ids == (*prompt, encoder.eot)  # a rejected "" is a deletion, never the no-speech path
        if target == "eot":
            assert chosen.ids == (*prompt, encoder.eot) and chosen.prefix_len == len(prompt)
        else:
            assert chosen.ids == (encoder.sot, no_speech, encoder.eot) and chosen.prefix_len == 1
        speech, _ = encode_pair(_example("hello", "yellow"), encoder, language)
        assert speech == encoder.encode("hello", language)  # a speech chosen is the same under every target


def test_whitespace_is_silence_and_a_full_stop_is_not():
    encoder = _encoder("nospeech")
    assert encode_pair(_example("  ", "you"), encoder, None)[0].prefix_len == 1
    assert encode_pair(_example(".", "you"), encoder, None)[0] == encoder.encode(".", None)


def test_unknown_target_names_the_choices():
    with pytest.raises(ValueError, match="eot, nospeech, both"):
        nospeech_target("silence")


def _batch(target: str, completion_only_loss: bool, scope: str = "all"):
    encoder = _encoder(target)
    gen = torch.Generator().manual_seed(0)
    items = []
    for i, (chosen, rejected) in enumerate(PAIRS):
        pair = encode_pair(_example(chosen, rejected), encoder, None)
        items.append(
            {"input_features": torch.randn(80, 3000, generator=gen).numpy(), "chosen": pair[0], "rejected": pair[1]}
            | {"index": i}
        )
    collator = PreferenceCollator(encoder.eot, completion_only_loss=completion_only_loss, rejected_scope=scope)
    return encoder, collator(items)


@pytest.mark.parametrize("completion_only_loss", [True, False])
def test_collator_scores_the_no_speech_token_and_the_end(completion_only_loss):
    encoder, batch = _batch("nospeech", completion_only_loss)
    for row in (0, 1):
        labels = batch["chosen_labels"][row]
        assert labels[labels != IGNORE_INDEX].tolist() == [encoder.no_speech, encoder.eot]
        assert batch["chosen_input_ids"][row, :2].tolist() == [encoder.sot, encoder.no_speech]
    # the rejected of a no-speech pair keeps the task prompt
    assert batch["rejected_input_ids"][0, :2].tolist() == encoder.prefix(None)


@pytest.mark.parametrize("scope", ["all", "diverging"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_packed_engine_scores_each_target_as_the_two_pass_forward(target, scope):
    _, batch = _batch(target, completion_only_loss=True, scope=scope)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config()).train()
    results = {}
    for mode in ("naive", "packed"):
        model.zero_grad()
        out = PreferenceWhisper(model, mode=mode, logps_chunk_size=3)(**batch)
        loss = preference_loss(out).loss
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        results[mode] = (loss.detach(), out, grads)
    (loss_ref, out_ref, grads_ref), (loss, out, grads) = results["naive"], results["packed"]
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    for key in out_ref:
        torch.testing.assert_close(out[key], out_ref[key], rtol=1e-5, atol=1e-4, msg=key)
    assert grads.keys() == grads_ref.keys() and grads
    for name in grads_ref:
        # fp32 sums in another order: ~4e-6 apart on gradients of ~0.4, for every target alike
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-4, atol=1e-5, msg=name)
    if target != "eot":
        assert out["chosen_tokens"][:2].tolist() == [2, 2]  # <|nocaptions|> and <|endoftext|>


def test_allowing_empty_output_drops_only_the_end_token():
    model, processor = make_tiny_model("tiny.en")
    eot = processor.tokenizer.eos_token_id
    model.generation_config.begin_suppress_tokens = [220, eot]
    assert not lets_empty_output(model.generation_config, eot)
    assert allow_empty_output(model, eot) and model.generation_config.begin_suppress_tokens == [220]
    assert lets_empty_output(model.generation_config, eot) and not allow_empty_output(model, eot)
