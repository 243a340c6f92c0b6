"""The shared-encoder preference forward equals the plain two-pass forward (loss and gradients)."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import WhisperForConditionalGeneration

from rlhf_asr.data.collator import PreferenceCollator
from rlhf_asr.data.examples import Segment
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.loss.orpo import orpo_loss, preference_loss
from rlhf_asr.model.bundled import bundled_processor
from rlhf_asr.model.encoder_cache import EncoderCache
from rlhf_asr.model.engine import PreferenceWhisper, packed_attention_mask
from whisper_fixtures import tiny_whisper_config

PAIRS = [
    ("the cat sat on the mat", "the cat sat on a hat"),
    ("a quick brown fox jumps over the lazy dog near the river bank", "a quick brown box"),
    ("hello world", "hello word and more words that make it longer"),
]


@pytest.fixture(scope="module")
def batch():
    return _batches(["all"])[0]


def _loss_and_grads(model, mode, batch, **engine_kwargs):
    model.zero_grad()
    engine = PreferenceWhisper(model, mode=mode, logps_chunk_size=7, **engine_kwargs)
    out = engine(**batch)
    loss = preference_loss(out).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), out, grads


def _assert_same(reference, candidate):
    loss_ref, out_ref, grads_ref = reference
    loss, out, grads = candidate
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    for key in out_ref:
        torch.testing.assert_close(out[key], out_ref[key], rtol=1e-5, atol=1e-4)
    assert grads.keys() == grads_ref.keys() and grads
    for name in grads_ref:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("mode", ["packed", "concat"])
def test_full_finetuning_matches_two_pass(batch, attn, mode):
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config(attn=attn))
    model.train()  # dropout is 0 in the config; train mode checks nothing depends on eval
    reference = _loss_and_grads(model, "naive", batch)
    _assert_same(reference, _loss_and_grads(model, mode, batch))


def test_lora_with_gradient_checkpointing_matches_two_pass(batch, tiny_model):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    model = get_peft_model(tiny_model, config)
    for name, param in model.named_parameters():  # LoRA B starts at 0: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    reference = _loss_and_grads(model, "naive", batch)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    _assert_same(reference, _loss_and_grads(model, "packed", batch))


@pytest.mark.parametrize(
    "method, options",
    [
        ("activation_checkpointing_enable", None),
        ("gradient_checkpointing_enable", None),
        ("activation_checkpointing_enable", {"use_reentrant": True}),
    ],
)
def test_trainer_checkpointing_call_recomputes_layers_and_keeps_gradients(batch, tiny_model, method, options):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    model = get_peft_model(tiny_model, config).train()
    for name, param in model.named_parameters():  # LoRA B starts at 0: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    reference = _loss_and_grads(model, "packed", batch)
    # The call transformers 5's Trainer makes for `--gradient_checkpointing True` (the older
    # name is what it calls on models that define only that one).
    kwargs = {"every_n_layers": 1, "offload": False}
    if method == "activation_checkpointing_enable":
        PreferenceWhisper(model).activation_checkpointing_enable(activation_checkpointing_kwargs=options, **kwargs)
    else:
        PreferenceWhisper(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs=options, **kwargs)
    calls = []
    core = model.get_base_model().model
    for layer in (core.encoder.layers[0], core.decoder.layers[0]):
        layer.fc1.register_forward_hook(lambda *_: calls.append(1))
    checkpointed = _loss_and_grads(model, "packed", batch)
    assert len(calls) == 4  # each layer: forward, and the recompute in backward
    _assert_same(reference, checkpointed)


def _assert_as_accurate_as_two_pass(fp32_reference, naive_bf16, packed_bf16):
    """bf16 keeps 8 mantissa bits, so neither path equals fp32: the packed path's error against the
    fp32 two-pass result must be no larger than the two-pass path's own error in bf16."""
    loss_ref, _, grads_ref = fp32_reference
    torch.testing.assert_close(packed_bf16[0].float(), loss_ref, rtol=1e-3, atol=1e-3)
    assert packed_bf16[2].keys() == grads_ref.keys()
    for name, ref in grads_ref.items():
        naive_error = (naive_bf16[2][name].float() - ref).norm() / ref.norm()
        packed_error = (packed_bf16[2][name].float() - ref).norm() / ref.norm()
        assert packed_error <= 1.5 * naive_error + 0.015, (name, float(packed_error), float(naive_error))


@pytest.mark.parametrize("weights", ["fp32 + autocast", "bf16"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_is_as_accurate_as_two_pass_in_bf16(batch, attn, weights):
    # "fp32 + autocast" is what `--bf16 True` runs (Trainer's autocast; on CPU here, CUDA on a GPU);
    # "bf16" is a model loaded in bf16, where the eager mask and the features follow the weights.
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config(attn=attn)).train()
    reference = _loss_and_grads(model, "naive", batch)
    if weights == "bf16":
        model.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=weights != "bf16"):
        naive = _loss_and_grads(model, "naive", batch)
        packed = _loss_and_grads(model, "packed", batch)
    assert packed[0] != reference[0]  # really computed in bf16
    _assert_as_accurate_as_two_pass(reference, naive, packed)


@pytest.mark.parametrize("checkpoint_decoder", [True, False])
def test_decoder_checkpointing_recomputes_layers_and_keeps_gradients(batch, checkpoint_decoder):
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config()).train()
    reference = _loss_and_grads(model, "naive", batch)
    calls = []
    model.model.decoder.layers[0].fc1.register_forward_hook(lambda *_: calls.append(1))
    packed = _loss_and_grads(model, "packed", batch, checkpoint_decoder=checkpoint_decoder)
    assert len(calls) == (2 if checkpoint_decoder else 1)  # forward, and the recompute in backward
    _assert_same(reference, packed)


def test_frozen_encoder_and_cache_match_and_skip_encoder(batch, tiny_model):
    reference_loss, reference_out, grads_ref = _loss_and_grads(tiny_model, "naive", batch)
    cache = EncoderCache()
    first = _loss_and_grads(tiny_model, "packed", batch, freeze_encoder=True, encoder_cache=cache)
    second = _loss_and_grads(tiny_model, "packed", batch, freeze_encoder=True, encoder_cache=cache)
    assert (cache.misses, cache.hits) == (3, 3)
    torch.testing.assert_close(first[0], reference_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(second[0], reference_loss, rtol=1e-5, atol=1e-5)
    assert not any(name.startswith("model.encoder") for name in first[2])
    for name, grad in second[2].items():
        torch.testing.assert_close(grad, grads_ref[name], rtol=1e-4, atol=1e-6)


def test_disk_encoder_cache_round_trips(tmp_path, tiny_model):
    cache = EncoderCache(directory=tmp_path)
    features = torch.randn(2, 80, 3000)
    encoder = tiny_model.model.encoder
    first = cache.get_or_compute("m", torch.tensor([5, -9]), features, encoder, "train")
    second = cache.get_or_compute("m", torch.tensor([-9, 5]), features.flip(0), encoder, "train")
    assert (cache.misses, cache.hits) == (2, 2)
    assert sorted(p.name for p in (tmp_path / "m" / "train").iterdir()) == [
        "0000000000000005.pt",
        "fffffffffffffff7.pt",
    ]
    torch.testing.assert_close(second, first.flip(0))


def test_memory_cache_respects_its_bound(tiny_model):
    cache = EncoderCache(max_bytes=1500 * 32 * 4)  # room for exactly one utterance
    cache.get_or_compute("m", torch.tensor([0, 1]), torch.randn(2, 80, 3000), tiny_model.model.encoder, "train")
    cache.get_or_compute("m", torch.tensor([0, 1]), torch.randn(2, 80, 3000), tiny_model.model.encoder, "train")
    assert (cache.hits, cache.misses) == (1, 3)


def test_packed_mask_blocks_cross_talk():
    mask = packed_attention_mask(3, 2, batch=1, device="cpu")[0, 0]
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    additive = packed_attention_mask(3, 2, batch=2, device="cpu", additive_dtype=torch.float32)
    assert additive.shape == (2, 1, 5, 5)
    assert torch.equal(additive[1, 0] == 0, expected)


def _no_speech_batch(timestamps: bool, **collator_options):
    """Pairs whose chosen is empty (no speech) next to speech pairs; features random."""
    processor = bundled_processor("tiny.en")
    encoder = TranscriptEncoder(processor.tokenizer, timestamps=timestamps)
    gen = torch.Generator().manual_seed(1)
    if timestamps:  # every chosen empty: with tiny.en's one-token prompt, the chosen block is 1 token long
        sequences = [
            (encoder.encode_segments((), None), encoder.encode_segments((Segment(0.0, 1.0, text),), None))
            for text in ("you", "Thank you. Thank you. Thank you.")
        ]
    else:
        pairs = [("", "you"), ("the cat sat on the mat", "the cat sat"), ("", "Thank you for watching. Bye bye.")]
        sequences = [(encoder.encode(chosen, None), encoder.encode(rejected, None)) for chosen, rejected in pairs]
    items = [
        {"input_features": torch.randn(80, 3000, generator=gen).numpy(), "chosen": c, "rejected": r, "index": i}
        for i, (c, r) in enumerate(sequences)
    ]
    return PreferenceCollator(pad_token_id=processor.tokenizer.eos_token_id, **collator_options)(items)


@pytest.mark.parametrize(
    "timestamps, collator_options",
    [(False, {}), (False, {"rejected_scope": "diverging"}), (False, {"completion_only_loss": True}), (True, {})],
)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_empty_chosen_packed_matches_two_pass(attn, timestamps, collator_options):
    batch = _no_speech_batch(timestamps, **collator_options)
    if timestamps:
        assert batch["chosen_input_ids"].shape[1] == 1  # a single-token block: <|startoftranscript|>
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config(attn=attn)).train()
    reference = _loss_and_grads(model, "naive", batch)
    assert torch.isfinite(reference[0])
    # the empty chosen scores <|endoftext|> alone (and <|notimestamps|> when the prompt is scored): no text token
    prompt_scored = not (timestamps or collator_options.get("completion_only_loss"))
    assert reference[1]["chosen_tokens"][0] == (2 if prompt_scored else 1)
    # its odds: from the divergence (<|endoftext|> against the rejected's first word) with scope diverging
    assert reference[1]["chosen_odds_tokens"][0] == (2 if not (timestamps or collator_options) else 1)
    _assert_same(reference, _loss_and_grads(model, "packed", batch))
    _assert_same(reference, _loss_and_grads(model, "concat", batch))


def _batches(scopes, **options):
    processor = bundled_processor("tiny.en")
    encoder = TranscriptEncoder(processor.tokenizer)
    gen = torch.Generator().manual_seed(0)
    items = [
        {
            "input_features": torch.randn(80, 3000, generator=gen).numpy(),
            "chosen": encoder.encode(chosen, None),
            "rejected": encoder.encode(rejected, None),
            "index": i,
        }
        for i, (chosen, rejected) in enumerate(PAIRS)
    ]
    eot = processor.tokenizer.eos_token_id
    return [PreferenceCollator(pad_token_id=eot, rejected_scope=scope, **options)(items) for scope in scopes]


@pytest.mark.parametrize("completion_only_loss", [False, True])
def test_diverging_scope_nll_is_the_whole_chosen_and_the_odds_ratio_the_suffix(completion_only_loss):
    """Issue 22: the shared prefix leaves the odds ratio only; ORPO's NLL stays over the whole chosen."""
    everything, diverging = _batches(["all", "diverging"], completion_only_loss=completion_only_loss)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config()).eval()
    engine = PreferenceWhisper(model, mode="packed", logps_chunk_size=7)
    with torch.no_grad():
        out_all, out_div = engine(**everything), engine(**diverging)
    torch.testing.assert_close(out_div["chosen_logps"], out_all["chosen_logps"], rtol=1e-5, atol=1e-5)
    assert torch.equal(out_div["chosen_tokens"], out_all["chosen_tokens"])
    with torch.no_grad():  # the suffix-only sums, each transcript scored on its own (two passes, full logits)
        naive = PreferenceWhisper(model, mode="naive")
        suffix = naive(**{**diverging, "chosen_labels": diverging["chosen_odds_labels"]})
    torch.testing.assert_close(out_div["chosen_odds_logps"], suffix["chosen_logps"], rtol=1e-5, atol=1e-5)
    assert torch.equal(out_div["chosen_odds_tokens"], suffix["chosen_tokens"])
    assert (out_div["chosen_odds_tokens"] < out_div["chosen_tokens"]).all()  # every pair shares a prefix

    for alpha in (0.1, 1.0):
        result, reference = preference_loss(out_div, alpha), preference_loss(out_all, alpha)
        torch.testing.assert_close(result.nll_loss, reference.nll_loss, rtol=1e-5, atol=1e-6)
        expected = orpo_loss(
            suffix["chosen_logps"], suffix["chosen_tokens"], suffix["rejected_logps"], suffix["rejected_tokens"], alpha
        )
        torch.testing.assert_close(result.or_loss, expected.or_loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result.log_odds_chosen, expected.log_odds_chosen, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(result.loss, reference.nll_loss + alpha * expected.or_loss, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["packed", "concat"])
def test_diverging_scope_packed_matches_two_pass(mode):
    (batch,) = _batches(["diverging"])
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config()).train()
    reference = _loss_and_grads(model, "naive", batch)
    assert set(reference[1]) >= {"chosen_odds_logps", "chosen_odds_tokens"}
    _assert_same(reference, _loss_and_grads(model, mode, batch))
