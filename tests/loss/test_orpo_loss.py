"""ORPO maths against TRL's implementation (trl.experimental.orpo), which we did not write."""

from types import SimpleNamespace

import pytest
import torch

from rlhf_asr.loss.logps import IGNORE_INDEX, chunked_token_logps, logits_token_logps, sequence_logps
from rlhf_asr.loss.orpo import log1mexp, orpo_loss

trl_orpo = pytest.importorskip("trl.experimental.orpo.orpo_trainer")
TRL = trl_orpo.ORPOTrainer


def _trl_loss(logits_c, labels_c, logits_r, labels_r, beta):
    """TRL's ORPO loss for an encoder-decoder model, assembled from its own methods."""
    chosen = TRL.get_batch_logps(logits_c, labels_c, average_log_prob=True, is_encoder_decoder=True)
    rejected = TRL.get_batch_logps(logits_r, labels_r, average_log_prob=True, is_encoder_decoder=True)
    fake_self = SimpleNamespace(beta=beta, accelerator=SimpleNamespace(device="cpu"))
    losses, chosen_rewards, rejected_rewards, ratio, log_odds = TRL.odds_ratio_loss(fake_self, chosen, rejected)
    nll = torch.nn.functional.cross_entropy(logits_c.flatten(0, 1), labels_c.flatten(), ignore_index=IGNORE_INDEX)
    return nll - losses.mean(), chosen, rejected, chosen_rewards, rejected_rewards, ratio, log_odds, nll


def _random_batch(batch=4, length=7, vocab=50, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=gen) * 3
    labels = torch.randint(0, vocab, (batch, length), generator=gen)
    labels[0, 4:] = IGNORE_INDEX
    labels[2, :2] = IGNORE_INDEX
    return logits, labels


@pytest.mark.parametrize("alpha", [0.1, 1.0, 0.0])
def test_loss_and_metrics_match_trl(alpha):
    logits_c, labels_c = _random_batch(seed=1)
    logits_r, labels_r = _random_batch(seed=2, length=9)
    ref = _trl_loss(logits_c, labels_c, logits_r, labels_r, alpha)

    chosen_sum, chosen_n = sequence_logps(logits_token_logps(logits_c, labels_c), labels_c)
    rejected_sum, rejected_n = sequence_logps(logits_token_logps(logits_r, labels_r), labels_r)
    out = orpo_loss(chosen_sum, chosen_n, rejected_sum, rejected_n, alpha=alpha)

    torch.testing.assert_close(chosen_sum / chosen_n, ref[1])
    torch.testing.assert_close(rejected_sum / rejected_n, ref[2])
    torch.testing.assert_close(out.loss, ref[0])
    torch.testing.assert_close(out.chosen_rewards, ref[3])
    torch.testing.assert_close(out.rejected_rewards, ref[4])
    torch.testing.assert_close(out.log_odds_ratio, ref[5])
    torch.testing.assert_close(out.log_odds_chosen, ref[6])
    torch.testing.assert_close(out.nll_loss, ref[7])


def test_chunked_logps_match_trl_logps_and_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 16, requires_grad=True)
    weight = torch.randn(40, 16, requires_grad=True)
    labels = torch.randint(0, 40, (3, 6))
    labels[1, 3:] = IGNORE_INDEX
    upstream = torch.randn(3)

    ref = TRL.get_batch_logps(hidden @ weight.T, labels, average_log_prob=False, is_encoder_decoder=True)
    (ref * upstream).sum().backward()
    ref_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    ours, _ = sequence_logps(chunked_token_logps(hidden, weight, labels, chunk_size=4), labels)
    (ours * upstream).sum().backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(hidden.grad, ref_grads[0])
    torch.testing.assert_close(weight.grad, ref_grads[1])


def test_frozen_output_matrix_gets_no_gradient():
    hidden = torch.randn(2, 3, 8, requires_grad=True)
    weight = torch.randn(20, 8)
    labels = torch.randint(0, 20, (2, 3))
    chunked_token_logps(hidden, weight, labels, chunk_size=2).sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    assert weight.grad is None


def test_log1mexp_is_finite_at_extremes():
    x = torch.tensor([-1e-12, -1e-6, -0.5, -0.7, -5.0, -50.0, -1000.0, 0.0])
    y = log1mexp(x)
    assert torch.isfinite(y[:-1]).all()
    expected = torch.log1p(-torch.exp(x[2:7].double())).float()
    torch.testing.assert_close(y[2:7], expected)
    assert y[-1] < -80  # P = 1 is clamped, not NaN


def test_odds_ratio_is_finite_for_confident_and_hopeless_transcripts():
    # chosen almost certain (mean log-prob -1e-10), rejected hopeless (mean -50)
    out = orpo_loss(torch.tensor([-1e-9]), torch.tensor([10]), torch.tensor([-500.0]), torch.tensor([10]))
    assert torch.isfinite(out.loss)
    # log odds: -log(1e-10) ~ 23 for the chosen, ~ -50 for the rejected
    assert 70 < out.log_odds_chosen < 76
    assert out.or_loss < 1e-20


def test_alpha_zero_is_plain_nll():
    logits, labels = _random_batch(seed=3)
    sums, counts = sequence_logps(logits_token_logps(logits, labels), labels)
    out = orpo_loss(sums, counts, sums - 1.0, counts, alpha=0.0)
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(out.loss, nll)


# ---- issue 22, item 1: no NaN gradient from the branch torch.where does not take ----

_NEAR_ZERO = [-1e-8, -(2.0**-25), -2.4e-8, -1e-30, -torch.finfo(torch.float32).tiny, -1e-45, 0.0]
_SWEEP = [*torch.linspace(-50.0, -1e-3, 97).tolist(), -0.6931, -0.6932, -1e-4, -1e-6, *_NEAR_ZERO]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_log1mexp_and_log_odds_have_finite_gradients_over_the_whole_range(dtype):
    """Each branch of the where() is fed an input it is finite at, so 0 * inf never reaches the gradient."""
    from rlhf_asr.loss.orpo import log_odds

    for fn in (log1mexp, log_odds):
        x = torch.tensor(_SWEEP, dtype=dtype).clamp(min=-50.0).requires_grad_()
        fn(x).sum().backward()
        bad = [v for v, g in zip(_SWEEP, x.grad.tolist()) if not torch.isfinite(torch.tensor(g))]
        assert not bad, (fn.__name__, dtype, bad[:5])


def test_log1mexp_values_unchanged_away_from_zero():
    x = torch.linspace(-50.0, -1e-6, 2001, dtype=torch.float64)
    torch.testing.assert_close(log1mexp(x.float()), torch.log(-torch.expm1(x)).float(), rtol=1e-5, atol=1e-6)


def test_orpo_loss_with_a_near_certain_chosen_has_a_finite_gradient():
    """The issue's reproduction: chosen mean -1e-8 gave a finite loss and a NaN gradient."""
    chosen = torch.tensor([-1e-8], requires_grad=True)
    rejected = torch.tensor([-3.0], requires_grad=True)
    out = orpo_loss(chosen, torch.tensor([1]), rejected, torch.tensor([1]), alpha=0.1)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()


def test_confident_tokens_give_finite_hidden_state_gradients():
    """5 tokens with log-probs [-1.19e-7, 0, 0, 0, 0] (chosen mean ~ -2.4e-8) through the chunked log-probs."""
    weight = torch.eye(6)  # logits = hidden: each label's logit 40 above the others ...
    labels = torch.tensor([[0, 1, 2, 3, 4]])
    hidden = torch.eye(6)[labels[0]] * 40.0
    hidden[0, 5] = 40.0 - 15.9  # ... but for one token 15.9 above: 1 + exp(-15.9) rounds to 1 + 2^-23
    hidden = hidden.unsqueeze(0).requires_grad_()
    token_logps = chunked_token_logps(hidden, weight, labels, chunk_size=2)
    torch.testing.assert_close(token_logps, torch.tensor([[-(2.0**-23), 0.0, 0.0, 0.0, 0.0]]), rtol=0, atol=1e-9)
    chosen_sum, chosen_n = sequence_logps(token_logps, labels)
    rejected_sum = torch.tensor([-4.0], requires_grad=True)
    out = orpo_loss(chosen_sum, chosen_n, rejected_sum, torch.tensor([3]), alpha=1.0)
    out.loss.backward()
    assert torch.isfinite(hidden.grad).all() and torch.isfinite(rejected_sum.grad).all()


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_loss_still_matches_trl_for_ordinary_transcripts_after_the_guard(alpha):
    """Means across (-20, -0.01): the value and the gradient are TRL's formula."""
    means = torch.tensor([-20.0, -3.0, -0.7, -0.69, -0.2, -0.01], dtype=torch.float64)
    chosen = means.clone().requires_grad_()
    rejected = means.flip(0).clone().requires_grad_()
    ones = torch.ones(6, dtype=torch.long)
    out = orpo_loss(chosen, ones, rejected, ones, alpha=alpha)
    fake_self = SimpleNamespace(beta=alpha, accelerator=SimpleNamespace(device="cpu"))
    ref_c, ref_r = means.float().clone().requires_grad_(), means.flip(0).float().clone().requires_grad_()
    losses = TRL.odds_ratio_loss(fake_self, ref_c, ref_r)[0]
    ref_loss = -ref_c.sum() / 6 - losses.mean()
    torch.testing.assert_close(out.loss, ref_loss)
    out.loss.backward()
    ref_loss.backward()
    torch.testing.assert_close(chosen.grad.float(), ref_c.grad)
    torch.testing.assert_close(rejected.grad.float(), ref_r.grad)
