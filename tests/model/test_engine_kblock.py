"""K candidate transcripts per audio in one decoder pass equal K separate full-model passes.

The reference here is the plain thing, written out in the test: the whole model once per
candidate slot on the collator's full rows (no trimming, no packing, full logits). Per-candidate
log-prob sums and the gradients of a loss on them (all parameters, or LoRA's) are compared with
the packed engine, and with the engine's naive and concat modes.
"""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import WhisperForConditionalGeneration

from rlhf_asr.data.collator import CandidateCollator, PreferenceCollator
from rlhf_asr.data.tokens import EncodedTranscript, TranscriptEncoder
from rlhf_asr.loss.logps import IGNORE_INDEX
from rlhf_asr.model.encoder_cache import EncoderCache
from rlhf_asr.model.engine import CandidateLogps, PreferenceWhisper
from rlhf_asr.model.packing import block_causal_mask, block_positions, packed_attention_mask
from whisper_fixtures import tiny_processor, tiny_whisper_config

SOT, EOT, NO_TS = 50257, 50256, 50362
# A short audio window (Whisper's is 1500 encoder frames from 3000 mel frames) keeps the many full
# passes of the reference fast on CPU; nothing in the packing depends on the number of frames.
SOURCE_POSITIONS = 100
# 40 label tokens with the prompt scored (<|notimestamps|>, 38 text tokens, <|endoftext|>)
LONG = (
    "a quick brown fox jumps over the lazy dog near the river bank while the sun sets slowly behind "
    "the distant hills, and the birds in the old oak trees sing their evening songs to each other"
)
# Per audio, up to four candidates: a K-best with an empty one ("" is the prompt then <|endoftext|>).
CANDIDATES = [
    ["the cat sat on the mat", "the cat sat on a hat", "", "a cat"],
    [LONG, "a quick brown box", "a quick brown fox", "hello"],
    ["hello world", "", "hello word and more words that make it longer", "hello"],
]


@pytest.fixture(scope="module")
def english():
    return TranscriptEncoder(tiny_processor("tiny.en").tokenizer)


def _items(english, texts_per_audio):
    gen = torch.Generator().manual_seed(0)
    return [
        {
            "input_features": torch.randn(80, 2 * SOURCE_POSITIONS, generator=gen).numpy(),
            "candidates": [english.encode(text, None) for text in texts],
            "index": i,
        }
        for i, texts in enumerate(texts_per_audio)
    ]


def _batch(english, texts_per_audio, **options):
    return CandidateCollator(pad_token_id=EOT, **options)(_items(english, texts_per_audio))


def _model(attn="sdpa", seed=0):
    torch.manual_seed(seed)
    config = tiny_whisper_config(attn=attn, max_source_positions=SOURCE_POSITIONS)
    return WhisperForConditionalGeneration(config).train()  # dropout 0


def _separate_passes(model, batch) -> CandidateLogps:
    """The reference: one full-model pass per slot on its whole [B, L] row, full logits, no engine code."""
    logps, tokens = [], []
    for k in range(batch["candidate_input_ids"].shape[1]):
        ids, labels = batch["candidate_input_ids"][:, k], batch["candidate_labels"][:, k]  # [B, L]
        logits = model(input_features=batch["input_features"], decoder_input_ids=ids).logits  # [B, L, V]
        scored = labels != IGNORE_INDEX
        picked = torch.log_softmax(logits.float(), -1).gather(2, labels.clamp(min=0)[..., None])[..., 0]  # [B, L]
        logps.append(torch.where(scored, picked, 0.0).sum(1))
        tokens.append(scored.sum(1))
    return CandidateLogps(torch.stack(logps, 1), torch.stack(tokens, 1))


def _risk_loss(result: CandidateLogps) -> torch.Tensor:
    """A minimum-risk-like loss: expected risk under a softmax over present candidates' mean log-probs, plus an NLL."""
    batch, k = result.logps.shape
    risks = torch.arange(batch * k, dtype=torch.float32).reshape(batch, k).remainder(5) / 5  # [B, K]
    means = (result.logps / result.tokens.clamp(min=1)).masked_fill(~result.present, float("-inf"))  # [B, K]
    return (torch.softmax(means, dim=1) * risks).sum() - 0.1 * result.logps.sum()


def _run(model, batch, mode=None, **engine_kwargs):
    """(result, loss, grads); mode None runs the reference."""
    model.zero_grad()
    if mode is None:
        result = _separate_passes(model, batch)
    else:
        result = PreferenceWhisper(model, mode=mode, logps_chunk_size=7, **engine_kwargs).forward_candidates(**batch)
    loss = _risk_loss(result)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return result, loss.detach(), grads


def _assert_same(reference, candidate, only=None):
    (ref, ref_loss, ref_grads), (out, loss, grads) = reference, candidate
    assert torch.equal(out.tokens, ref.tokens)
    torch.testing.assert_close(out.logps, ref.logps, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    names = ref_grads.keys() if only is None else [n for n in ref_grads if only(n)]
    assert grads and grads.keys() == set(names)
    for name in names:
        # float32 sums over a few hundred positions: an entry near 0 in a tensor whose largest entry
        # is ~1 carries an absolute error ~1e-6, so the floor scales with the tensor (1e-5 of its largest)
        floor = 1e-6 + 1e-5 * ref_grads[name].abs().max().item()
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=floor, msg=name)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_k_blocks_equal_k_separate_passes_in_logps_and_gradients(english, k, attn):
    batch = _batch(english, [texts[:k] for texts in CANDIDATES])
    assert batch["candidate_input_ids"].shape[:2] == (3, k)
    model = _model(attn)
    reference = _run(model, batch)
    assert torch.isfinite(reference[0].logps).all() and (reference[0].tokens > 0).all()
    for mode in ("packed", "naive", "concat"):
        _assert_same(reference, _run(model, batch, mode))


@pytest.mark.parametrize("completion_only_loss", [False, True])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_empty_candidate_beside_a_long_one(english, attn, completion_only_loss):
    """2 scored tokens (<|notimestamps|> <|endoftext|>) or 1 (<|endoftext|>) beside 40 or 39, in one pass."""
    batch = _batch(english, [["", LONG], [LONG, ""]], completion_only_loss=completion_only_loss)
    short, long = (1, 39) if completion_only_loss else (2, 40)
    model = _model(attn)
    reference = _run(model, batch)
    assert reference[0].tokens.tolist() == [[short, long], [long, short]]
    _assert_same(reference, _run(model, batch, "packed"))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_absent_slots_score_nothing_and_get_no_gradient(english, attn):
    """A ragged K-best (3, 1 and 2 candidates): absent slots give 0 tokens, 0 log-prob, no NaN, no gradient."""
    batch = _batch(english, [CANDIDATES[0][:3], CANDIDATES[1][:1], CANDIDATES[2][:2]])
    present = torch.tensor([[True, True, True], [True, False, False], [True, True, False]])
    model = _model(attn)
    reference = _run(model, batch)
    packed = _run(model, batch, "packed")
    _assert_same(reference, packed)
    result = packed[0]
    assert torch.equal(result.present, present) and (result.tokens[~present] == 0).all()
    assert torch.equal(result.logps[~present], torch.zeros(3)) and torch.isfinite(result.logps).all()
    for mode in ("packed", "naive", "concat"):
        model.zero_grad()
        out = PreferenceWhisper(model, mode=mode).forward_candidates(**batch)
        out.logps[~present].sum().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert all(torch.equal(g, torch.zeros_like(g)) for g in grads), mode
    # a slot absent from every row: a one-position block that scores nothing
    ids, labels = batch["candidate_input_ids"], batch["candidate_labels"]
    wider = {
        **batch,
        "candidate_input_ids": torch.cat([ids, torch.full_like(ids[:, :1], EOT)], 1),  # [B, K + 1, L]
        "candidate_labels": torch.cat([labels, torch.full_like(labels[:, :1], IGNORE_INDEX)], 1),
    }
    with torch.no_grad():
        out = PreferenceWhisper(model, mode="packed").forward_candidates(**wider)
    assert out.tokens[:, 3].tolist() == [0, 0, 0] and out.logps[:, 3].tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(out.logps[:, :3], result.logps.detach(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("completion_only_loss", [False, True])
@pytest.mark.parametrize("mode", ["packed", "naive", "concat"])
def test_two_candidates_are_the_pair_forward(english, mode, completion_only_loss):
    """K = 2 through `forward_candidates` gives the pair forward's chosen and rejected sums, bit for bit."""
    pairs = [texts[:2] for texts in CANDIDATES] + [["", LONG]]
    items = _items(english, pairs)
    for item in items:
        item["chosen"], item["rejected"] = item["candidates"]
    pair_batch = PreferenceCollator(pad_token_id=EOT, completion_only_loss=completion_only_loss)(items)
    candidate_batch = CandidateCollator(pad_token_id=EOT, completion_only_loss=completion_only_loss)(items)
    engine = PreferenceWhisper(_model(), mode=mode, logps_chunk_size=7).eval()
    with torch.no_grad():
        pair, candidates = engine(**pair_batch), engine.forward_candidates(**candidate_batch)
    for k, name in enumerate(("chosen", "rejected")):
        assert torch.equal(candidates.logps[:, k], pair[f"{name}_logps"]), name
        assert torch.equal(candidates.tokens[:, k], pair[f"{name}_tokens"]), name


def test_block_mask_is_causal_within_blocks_and_closed_across():
    lengths = (3, 1, 2)
    mask = block_causal_mask(lengths, batch=2, device="cpu")
    assert mask.shape == (2, 1, 6, 6)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask[1, 0], expected)
    additive = block_causal_mask(lengths, batch=1, device="cpu", additive_dtype=torch.bfloat16)[0, 0]
    assert additive.dtype == torch.bfloat16 and torch.equal(additive == 0, expected)
    assert (additive[~expected] == torch.finfo(torch.bfloat16).min).all()
    assert block_positions(lengths, batch=2, device="cpu").tolist() == [[0, 1, 2, 0, 0, 1]] * 2
    # every pair of positions, for uneven blocks: allowed exactly when same block and not in the future
    lengths = (5, 1, 7, 2)
    block = [k for k, n in enumerate(lengths) for _ in range(n)]
    mask = block_causal_mask(lengths, batch=1, device="cpu")[0, 0].tolist()
    assert all(mask[i][j] == (block[i] == block[j] and j <= i) for i in range(15) for j in range(15))
    # the pair's mask is the K = 2 case, boolean and additive
    for dtype in (None, torch.float32):
        assert torch.equal(packed_attention_mask(4, 3, 2, "cpu", dtype), block_causal_mask((4, 3), 2, "cpu", dtype))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_changing_one_candidate_leaves_the_others_unchanged(english, attn):
    """Output invariance: nothing of block 2 reaches blocks 1 and 3 through the packed decoder."""
    batch = _batch(english, [texts[:3] for texts in CANDIDATES])
    engine = PreferenceWhisper(_model(attn), mode="packed", logps_chunk_size=7).eval()
    changed = batch["candidate_input_ids"].clone()
    changed[:, 1] = torch.randint(0, EOT, changed[:, 1].shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = engine.forward_candidates(**batch).logps
        after = engine.forward_candidates(**{**batch, "candidate_input_ids": changed}).logps
    torch.testing.assert_close(after[:, [0, 2]], before[:, [0, 2]], rtol=1e-6, atol=1e-6)
    assert (after[:, 1] != before[:, 1]).all()  # the changed candidate itself did change


def test_lora_frozen_encoder_and_cache(english):
    """The trainer's usual set-up: LoRA, frozen encoder, encoder cache; the second step reads the cache."""
    batch = _batch(english, [texts[:3] for texts in CANDIDATES])
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    model = get_peft_model(_model(), config)
    for name, param in model.named_parameters():  # LoRA B starts at 0: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    reference = _run(model, batch)
    cache = EncoderCache()
    for _ in range(2):
        packed = _run(model, batch, "packed", freeze_encoder=True, encoder_cache=cache)
        _assert_same(reference, packed, only=lambda name: ".decoder." in name)
    assert (cache.misses, cache.hits) == (3, 3)


def test_collator_pads_items_to_the_batch_k(english):
    batch = _batch(english, [["the cat", ""], ["hello there world"]])
    assert set(batch) == {"input_features", "candidate_input_ids", "candidate_labels", "example_index"}
    ids, labels = batch["candidate_input_ids"], batch["candidate_labels"]
    sequences = [english.encode(text, None).ids for text in ("the cat", "", "hello there world")]
    length = max(len(s) for s in sequences) - 1
    assert ids.shape == labels.shape == (2, 2, length) and batch["input_features"].shape == (2, 80, 200)
    for (row, k), seq in zip([(0, 0), (0, 1), (1, 0)], sequences):
        n = len(seq) - 1
        assert ids[row, k].tolist() == list(seq[:-1]) + [EOT] * (length - n)
        assert labels[row, k].tolist() == list(seq[1:]) + [IGNORE_INDEX] * (length - n)  # logits at t score label t
    assert labels[0, 1, :2].tolist() == [NO_TS, EOT]  # the empty candidate: prompt then <|endoftext|>
    assert (ids[1, 1] == EOT).all() and (labels[1, 1] == IGNORE_INDEX).all()  # absent slot
    assert batch["example_index"].tolist() == [0, 1]
    masked = _batch(english, [["the cat", ""], ["hello there world"]], completion_only_loss=True)["candidate_labels"]
    assert masked[0, 1, :2].tolist() == [IGNORE_INDEX, EOT]
    assert (masked[:, :, 0][labels[:, :, 0] != IGNORE_INDEX] == IGNORE_INDEX).all()  # <|notimestamps|> unscored
    assert torch.equal(masked[:, :, 1:], labels[:, :, 1:])


def test_collator_scores_from_a_hand_built_prefix():
    """Hand-built ids: with the prompt loss off, scoring starts at prefix_len (a 4-token multilingual prompt)."""
    transcript = EncodedTranscript((SOT, 1, 2, NO_TS, 11, 12, EOT), prefix_len=4)
    items = [{"input_features": torch.zeros(80, 3000).numpy(), "candidates": [transcript], "index": 7}]
    assert CandidateCollator(EOT, completion_only_loss=True)(items)["candidate_labels"].tolist() == [
        [[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 11, 12, EOT]]
    ]
    assert CandidateCollator(EOT)(items)["candidate_labels"].tolist() == [[[1, 2, NO_TS, 11, 12, EOT]]]
    with pytest.raises(ValueError, match="at least one candidate"):
        CandidateCollator(EOT)([{**items[0], "candidates": []}])


def test_candidates_must_be_three_dimensional(english):
    batch = _batch(english, [["the cat"]])
    engine = PreferenceWhisper(_model(), mode="packed")
    with pytest.raises(ValueError, match=r"\[B, K, L\]"):
        engine.forward_candidates(
            batch["input_features"], batch["candidate_input_ids"][:, 0], batch["candidate_labels"][:, 0]
        )
