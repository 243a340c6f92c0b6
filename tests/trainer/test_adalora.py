"""AdaLoRA pieces: the orthogonal regulariser against PEFT's, rank allocation on skipped steps, resume state."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from peft import AdaLoraConfig, get_peft_model

from rlhf_asr.loss.orth_reg import orth_reg
from rlhf_asr.trainer.adalora_state import load_adalora_state, save_adalora_state
from rlhf_asr.trainer.callbacks import AdaLoraCallback


def _adalora(model, **overrides):
    fields = dict(
        init_r=4,
        target_r=1,
        tinit=0,
        tfinal=2,
        deltaT=1,
        total_step=6,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
    )
    fields.update(overrides)
    torch.manual_seed(1)
    return get_peft_model(model, AdaLoraConfig(**fields))


def _batch(model, batch=2, length=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, 80, 3000, generator=gen)
    labels = torch.randint(0, 1000, (batch, length), generator=gen)
    return features, labels


def test_orth_reg_is_what_peft_adds_to_the_loss(tiny_model):
    peft_model = _adalora(tiny_model, orth_reg_weight=0.3)
    with torch.no_grad():  # E starts at 0, so give the update some size; R does not read E
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    features, labels = _batch(tiny_model)
    with torch.no_grad():
        with_reg = peft_model.base_model(input_features=features, labels=labels).loss  # AdaLoraModel.forward
        without = peft_model.base_model.model(input_features=features, labels=labels).loss
        reg = orth_reg(peft_model.named_parameters(), "default")
    assert reg > 0.1
    torch.testing.assert_close(with_reg - without, 0.3 * reg, rtol=1e-5, atol=1e-6)


def test_orth_reg_has_gradients_and_is_zero_without_adapters(tiny_model):
    assert float(orth_reg(tiny_model.named_parameters())) == 0.0
    peft_model = _adalora(tiny_model)
    orth_reg(peft_model.named_parameters()).backward()
    grads = [p.grad for n, p in peft_model.named_parameters() if "lora_A" in n or "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def _scaled_step(peft_model, optimizer, scaler, overflow: bool):
    """One fp16-style step: scaled backward, GradScaler step (skipped on inf gradients)."""
    features, labels = _batch(peft_model)
    loss = peft_model.base_model.model(input_features=features, labels=labels).loss
    if overflow:
        loss = loss * float("inf")  # what an fp16 overflow in the backward looks like
    scaler.scale(loss).backward()
    optimizer.step()


def _importance(peft_model):
    allocator = peft_model.base_model.rankallocator
    return [t.clone() for d in (allocator.exp_avg_ipt, allocator.exp_avg_unc) for t in d.values()]


def test_skipped_fp16_step_leaves_adalora_importance_finite(tiny_model):
    """A step the gradient scaler skipped (inf gradients) must not feed AdaLoRA's importance averages."""
    peft_model = _adalora(tiny_model.train(), total_step=8)
    accelerator = Accelerator()
    accelerator.scaler = torch.amp.GradScaler("cpu")  # the scaler Accelerate builds for fp16 on CUDA
    optimizer = accelerator.prepare_optimizer(
        torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-3), device_placement=False
    )
    callback = AdaLoraCallback(peft_model)
    for step, overflow in enumerate([False, True, False]):
        _scaled_step(peft_model, optimizer, accelerator.scaler, overflow)
        assert optimizer.step_was_skipped == overflow
        before = _importance(peft_model)
        callback.on_optimizer_step(None, SimpleNamespace(global_step=step), None, optimizer=optimizer)
        after = _importance(peft_model)
        assert all(torch.isfinite(t).all() for t in after), f"non-finite importance after step {step}"
        changed = len(before) != len(after) or any(not torch.equal(a, b) for a, b in zip(before, after))
        assert changed != overflow  # updated on real steps only
        optimizer.zero_grad()
    assert len(callback.rank_history) == 3


@pytest.mark.parametrize("skipped", [False, True])
def test_final_rank_budget_is_applied_even_on_a_skipped_step(tiny_model, skipped):
    """From step total - tfinal on, AdaLoRA reads no gradients, only masks: a skipped step must still mask."""
    peft_model = _adalora(tiny_model.train(), total_step=6, tinit=2, tfinal=2)
    with torch.no_grad():  # E starts at 0, and with it every importance score: no optimizer here
        for name, param in peft_model.named_parameters():
            if "lora_E" in name:
                param.normal_()
    callback = AdaLoraCallback(peft_model)
    for step in range(4):  # importance from ordinary steps; step 3 prunes to a budget of 16
        features, labels = _batch(peft_model, seed=step)
        peft_model.base_model.model(input_features=features, labels=labels).loss.backward()
        callback.on_optimizer_step(None, SimpleNamespace(global_step=step), None)
        peft_model.zero_grad()
    optimizer = SimpleNamespace(step_was_skipped=skipped)
    callback.on_optimizer_step(None, SimpleNamespace(global_step=4), None, optimizer=optimizer)  # final budget
    kept = peft_model.peft_config["default"].rank_pattern.values()
    # target_r x 12 modules: q and v of 2 layers of encoder self-, decoder self- and cross-attention
    assert sum(sum(row) for row in kept) == 1 * 12


def test_pruned_adalora_checkpoint_without_its_state_is_refused(tiny_model, tmp_path):
    """Such an adapter no longer fits the full-rank model and its importance scores are lost."""
    peft_model = _adalora(tiny_model)
    peft_model.peft_config["default"].rank_pattern = {"model.encoder.layers.0.self_attn.q_proj.lora_E": [True] * 4}
    peft_model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pruned by rank reallocation but no adalora_state.pt"):
        load_adalora_state(peft_model, str(tmp_path))
    save_adalora_state(peft_model, str(tmp_path))
    assert load_adalora_state(peft_model, str(tmp_path))
