"""CUDA-only checks (skipped without a GPU; CI has none): the packed engine and the training step
in the precisions users train in on a GPU, and 8-bit loading through bitsandbytes."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import WhisperForConditionalGeneration

from rlhf_asr.data.collator import CandidateCollator
from rlhf_asr.data.tokens import TranscriptEncoder
from rlhf_asr.loss.orpo import orpo_loss
from rlhf_asr.model.engine import PreferenceWhisper
from whisper_fixtures import tiny_processor, tiny_whisper_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _batch(config, batch=3, chosen_len=9, rejected_len=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, config.num_mel_bins, 3000, generator=gen)

    def transcript(length):
        labels = torch.randint(0, 50000, (batch, length), generator=gen)
        if length > 3:
            labels[0, -2:] = -100  # padding in one row (a 2-token transcript keeps both)
        ids = torch.cat([torch.full((batch, 1), config.decoder_start_token_id), labels[:, :-1].clamp(min=0)], 1)
        return ids, labels

    c_ids, c_labels = transcript(chosen_len)
    r_ids, r_labels = transcript(rejected_len)
    tensors = dict(input_features=features, chosen_input_ids=c_ids, chosen_labels=c_labels,
                   rejected_input_ids=r_ids, rejected_labels=r_labels)  # fmt: skip
    return {k: v.cuda() for k, v in tensors.items()}


def _model(attn="sdpa"):
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(tiny_whisper_config(attn=attn)).cuda().eval()


@pytest.mark.parametrize(
    "lengths", [(9, 6), (2, 40)], ids=["speech", "no-speech chosen (<|nospeech|> <|endoftext|>) vs a long rejected"]
)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_equals_two_pass_under_cuda_autocast(dtype, attn, lengths):
    model = _model(attn)
    batch = _batch(model.config, chosen_len=lengths[0], rejected_len=lengths[1])
    with torch.no_grad():
        exact = PreferenceWhisper(model, mode="naive")(**batch)
        with torch.autocast("cuda", dtype=dtype):
            packed = PreferenceWhisper(model, mode="packed")(**batch)
            naive = PreferenceWhisper(model, mode="naive")(**batch)
    for key in ("chosen_logps", "rejected_logps"):
        err_packed = (packed[key].float() - exact[key]).abs().max()
        err_naive = (naive[key].float() - exact[key]).abs().max()
        assert err_packed <= 2 * err_naive + 1e-3, (key, err_packed, err_naive)


# Per audio, four candidates of a K-best: an empty one ("" is the prompt then <|endoftext|>) and very unequal lengths.
KBEST = [
    ["the cat sat on the mat", "the cat sat on a hat", "", "a cat"],
    [" ".join(["a quick brown fox jumps over the lazy dog"] * 5), "a quick brown box", "a quick brown fox", "hello"],
    ["hello world", "", "hello word and more words that make it longer", "hello"],
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_k_blocks_equal_separate_passes_under_cuda_autocast(dtype, attn):
    """K = 4 candidates packed in one decoder pass under autocast: no further from the float32 result
    than the K separate passes (`naive`) under the same autocast."""
    english = TranscriptEncoder(tiny_processor("tiny.en").tokenizer)
    gen = torch.Generator().manual_seed(0)
    items = [
        {
            "input_features": torch.randn(80, 3000, generator=gen).numpy(),
            "candidates": [english.encode(text, None) for text in texts],
            "index": i,
        }
        for i, texts in enumerate(KBEST)
    ]
    batch = {k: v.cuda() for k, v in CandidateCollator(pad_token_id=50256)(items).items() if k != "example_index"}
    model = _model(attn)
    with torch.no_grad():
        exact = PreferenceWhisper(model, mode="naive").forward_candidates(**batch)
        with torch.autocast("cuda", dtype=dtype):
            packed = PreferenceWhisper(model, mode="packed").forward_candidates(**batch)
            naive = PreferenceWhisper(model, mode="naive").forward_candidates(**batch)
    assert torch.equal(packed.tokens, exact.tokens) and exact.logps.shape == (3, 4)
    err_packed = (packed.logps.float() - exact.logps).abs().max()
    err_naive = (naive.logps.float() - exact.logps).abs().max()
    assert err_packed <= 2 * err_naive + 1e-3, (err_packed, err_naive)


def test_packed_mask_isolates_rejected_on_cuda():
    model = _model()
    batch = _batch(model.config)
    engine = PreferenceWhisper(model, mode="packed")
    with torch.no_grad():
        first = engine(**batch)["rejected_logps"]
        batch["chosen_input_ids"] = torch.roll(batch["chosen_input_ids"], 1, dims=1)
        second = engine(**batch)["rejected_logps"]
    torch.testing.assert_close(first, second)


def test_fp16_step_with_grad_scaler_updates_lora():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_model().train(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    engine = PreferenceWhisper(model, mode="packed")
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.float16):
            out = engine(**_batch(model.config))
            loss = orpo_loss(
                out["chosen_logps"], out["chosen_tokens"], out["rejected_logps"], out["rejected_tokens"]
            ).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable))
    assert all(torch.isfinite(p).all() for p in trainable)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_8bit_loading_trains_lora(tmp_path):
    from rlhf_asr.model.peft_setup import apply_peft, load_training_model
    from rlhf_asr.trainer.config import ModelArguments

    torch.manual_seed(0)
    WhisperForConditionalGeneration(
        tiny_whisper_config(d_model=256, encoder_ffn_dim=512, decoder_ffn_dim=512)
    ).half().save_pretrained(tmp_path)
    model = load_training_model(str(tmp_path), use_8bit=True)
    assert any("Linear8bitLt" in type(m).__name__ for m in model.modules())
    model = apply_peft(model, ModelArguments(peft="lora"), total_steps=4)
    engine = PreferenceWhisper(model, mode="packed")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    losses = []
    batch = _batch(model.config)
    for _ in range(4):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = engine(**batch)
            loss = orpo_loss(
                out["chosen_logps"], out["chosen_tokens"], out["rejected_logps"], out["rejected_tokens"]
            ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_log_odds_gradients_are_finite_on_cuda(dtype):
    """The log1mexp fix on the GPU's kernels: a near-certain chosen (mean log-prob -> 0) gave NaN."""
    from rlhf_asr.loss.orpo import log1mexp, log_odds

    sweep = [-50.0, -10.0, -1.0, -0.1, -1e-3, -1e-5, -1e-8, -(2.0**-25), -1e-30, 0.0]
    for fn in (log1mexp, log_odds):
        x = torch.tensor(sweep, dtype=dtype, device="cuda").requires_grad_()
        fn(x).sum().backward()
        assert torch.isfinite(x.grad).all(), (fn.__name__, dtype, x.grad.tolist())
