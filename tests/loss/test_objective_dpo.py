"""DPO against TRL's `DPOTrainer` loss code (trl/trainer/dpo_trainer.py `_compute_loss`, run with a
stand-in model that returns given log-probs) and against numbers worked by hand from the paper."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from objective_fixtures import trl_dpo

from rlhf_asr.loss.objectives import CandidateScores, build_objective

pytest.importorskip("trl")
_CPU = SimpleNamespace(device="cpu")


def _token_logps(seed, batch=4, length=6):
    """Per-token log-probs [B, T] (0 where masked), their mask, and a chosen/rejected split."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(2 * batch, length, generator=gen) < 0.8
    mask[:, 0] = True  # every transcript scores at least one token
    logps = torch.log(torch.rand(2 * batch, length, generator=gen)) * mask
    reference = (logps.sum(1) + torch.randn(2 * batch, generator=gen)).chunk(2)
    return logps.requires_grad_(), mask, reference


def _ours(token_logps, mask, reference, **weights):
    sums, counts = (token_logps * mask).sum(1), mask.sum(1)
    chosen, rejected = sums.chunk(2)
    chosen_n, rejected_n = counts.chunk(2)
    scores = CandidateScores.pair(chosen, chosen_n, rejected, rejected_n, reference_logps=torch.stack(reference, 1))
    return build_objective("dpo", **weights)(scores)


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_gradient_and_metrics_are_trls(beta):
    token_logps, mask, reference = _token_logps(seed=int(beta * 10))
    chosen, rejected = (token_logps * mask).chunk(2)  # TRL sums all positions: the model zeroes masked ones
    trl_loss, trl_metrics = trl_dpo(chosen, rejected, *mask.chunk(2), *reference, beta=beta)
    (trl_grad,) = torch.autograd.grad(trl_loss, token_logps)

    out = _ours(token_logps, mask, reference, beta=beta)
    (grad,) = torch.autograd.grad(out.loss, token_logps)
    torch.testing.assert_close(out.loss, trl_loss)
    torch.testing.assert_close(grad, trl_grad)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
        assert out.metrics[key].item() == pytest.approx(trl_metrics[key], rel=1e-5, abs=1e-6), key
    for key in ("logps/chosen", "logps/rejected"):  # summed log-probs, as TRL logs them
        assert out.metrics[key].item() == pytest.approx(trl_metrics[key], rel=1e-5), key


def test_rpo_alpha_is_trls_sigmoid_plus_weighted_sft_loss():
    """RPO in TRL 1.x: loss_type=["sigmoid", "sft"], loss_weights=[1, rpo_alpha]."""
    token_logps, mask, reference = _token_logps(seed=3)
    chosen, rejected = (token_logps * mask).chunk(2)
    config = {"beta": 0.1, "loss_types": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}
    trl_loss, trl_metrics = trl_dpo(chosen, rejected, *mask.chunk(2), *reference, **config)
    (trl_grad,) = torch.autograd.grad(trl_loss, token_logps)
    out = _ours(token_logps, mask, reference, beta=0.1, rpo_alpha=0.5)
    (grad,) = torch.autograd.grad(out.loss, token_logps)
    torch.testing.assert_close(out.loss, trl_loss)
    torch.testing.assert_close(grad, trl_grad)


@pytest.mark.parametrize("label_smoothing", [0.1, 0.3])
def test_label_smoothing_is_trls_conservative_sigmoid(label_smoothing):
    """TRL 1.x's DPO `sigmoid` has no label smoothing; its CPO `sigmoid` keeps the cDPO form that
    TRL < 1.0's DPO used. Fed the log-ratios (pi - ref), it is DPO's smoothed loss."""
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer").CPOTrainer
    token_logps, mask, reference = _token_logps(seed=4)
    sums = (token_logps * mask).sum(1).detach()
    ratios = sums.chunk(2)[0] - reference[0], sums.chunk(2)[1] - reference[1]
    stub = SimpleNamespace(beta=0.2, label_smoothing=label_smoothing, loss_type="sigmoid", alpha=0.0, accelerator=_CPU)
    losses, _, _ = cpo.cpo_loss(stub, *ratios)
    out = _ours(token_logps.detach(), mask, reference, beta=0.2, label_smoothing=label_smoothing)
    torch.testing.assert_close(out.loss, losses.mean())


def test_hand_example_from_the_paper():
    """Eq. 7 of arXiv 2305.18290, numbers by hand. Chosen: pi -10, ref -12; rejected: pi -8, ref -7.
    logits = 0.1 * ((-10 + 12) - (-8 + 7)) = 0.3;  loss = log(1 + e^-0.3) = 0.554355244...
    rewards: chosen 0.1 * 2 = 0.2, rejected 0.1 * -1 = -0.1."""
    scores = CandidateScores(
        torch.tensor([[-10.0, -8.0]]), torch.tensor([[5, 4]]), reference_logps=torch.tensor([[-12.0, -7.0]])
    )
    out = build_objective("dpo", beta=0.1)(scores)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-0.3)), rel=1e-6)
    assert out.loss.item() == pytest.approx(0.554355244, rel=1e-6)
    assert out.metrics["rewards/chosen"].item() == pytest.approx(0.2, rel=1e-6)
    assert out.metrics["rewards/rejected"].item() == pytest.approx(-0.1, rel=1e-6)
    assert out.metrics["rewards/margins"].item() == pytest.approx(0.3, rel=1e-6)
    assert out.metrics["rewards/accuracies"].item() == 1.0


def test_a_policy_equal_to_its_reference_gives_log_2_and_no_rewards():
    """At the start of training (policy = reference) every pair's logit is 0: loss log 2."""
    logps = torch.tensor([[-3.0, -9.0, -1.0], [-20.0, -2.0, -5.0]])
    scores = CandidateScores(logps, torch.full((2, 3), 4), reference_logps=logps.clone())
    out = build_objective("dpo", beta=0.5)(scores)
    assert out.loss.item() == pytest.approx(math.log(2), rel=1e-6)
    assert out.metrics["rewards/margins"].item() == 0.0
