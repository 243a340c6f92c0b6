"""SimPO against TRL's `CPOTrainer` (loss_type="simpo": its `get_batch_loss_metrics` and `cpo_loss`,
trl/experimental/cpo/cpo_trainer.py) and against numbers worked by hand from the paper."""

from __future__ import annotations

import math

import pytest
import torch
from objective_fixtures import logits_batch, trl_batch_metrics

from rlhf_asr.loss.logps import IGNORE_INDEX, logits_token_logps, sequence_logps
from rlhf_asr.loss.objectives import CandidateScores, build_objective

CPO = pytest.importorskip("trl.experimental.cpo.cpo_trainer").CPOTrainer


@pytest.mark.parametrize(
    ("beta", "gamma", "label_smoothing", "cpo_alpha"),
    [(2.0, 1.0, 0.0, 0.0), (2.5, 1.4, 0.0, 1.0), (0.1, 0.5, 0.2, 0.3)],
)
def test_simpo_loss_gradient_and_metrics_are_trls(beta, gamma, label_smoothing, cpo_alpha):
    logits, labels = logits_batch(seed=int(beta * 10), rows=8, length=8)  # 4 chosen, then 4 rejected
    (logits_c, logits_r), labels_c = logits.chunk(2), labels.chunk(2)[0]
    # a copy: for encoder-decoders TRL's CPO get_batch_logps overwrites the -100 labels with 0 in place
    means = CPO.get_batch_logps(logits, labels.clone(), average_log_prob=True, is_encoder_decoder=True).chunk(2)
    nll = torch.nn.functional.cross_entropy(logits_c.flatten(0, 1), labels_c.flatten(), ignore_index=IGNORE_INDEX)
    config = {"beta": beta, "simpo_gamma": gamma, "label_smoothing": label_smoothing, "cpo_alpha": cpo_alpha}
    forward = (*means, logits_c, logits_r, nll if cpo_alpha else torch.tensor(0.0))  # TRL: no NLL when 0
    trl_loss, trl_metrics = trl_batch_metrics(CPO, "cpo_loss", forward, loss_type="simpo", **config)
    (trl_grad,) = torch.autograd.grad(trl_loss, logits)

    sums, counts = sequence_logps(logits_token_logps(logits, labels), labels)
    (sum_c, sum_r), (n_c, n_r) = sums.chunk(2), counts.chunk(2)
    weights = {"beta": beta, "gamma": gamma, "label_smoothing": label_smoothing, "cpo_alpha": cpo_alpha}
    out = build_objective("simpo", **weights)(CandidateScores.pair(sum_c, n_c, sum_r, n_r))
    (grad,) = torch.autograd.grad(out.loss, logits)

    torch.testing.assert_close(out.loss, trl_loss)
    torch.testing.assert_close(grad, trl_grad)
    for key, value in trl_metrics.items():
        if key.startswith("logits/") or key == "nll_loss" and not cpo_alpha:
            continue  # logits are not an objective's input; TRL logs 0 NLL when it does not add it
        assert out.metrics[key].item() == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_hand_example_from_the_paper():
    """Eq. 6 of arXiv 2405.14734, numbers by hand. Chosen: -1.0 over 5 tokens (mean -0.2); rejected:
    -2.0 over 4 tokens (mean -0.5). beta 2, gamma 1: logits = 2 * (-0.2 + 0.5) - 1 = -0.4;
    loss = log(1 + e^0.4) = 0.913015...; rewards 2 * -0.2 = -0.4 and 2 * -0.5 = -1.0.
    A longer rejected with the same per-token log-prob changes nothing: the reward is per token."""
    for rejected_sum, rejected_tokens in ((-2.0, 4), (-20.0, 40)):
        scores = CandidateScores(torch.tensor([[-1.0, rejected_sum]]), torch.tensor([[5, rejected_tokens]]))
        out = build_objective("simpo", beta=2.0, gamma=1.0)(scores)
        assert out.loss.item() == pytest.approx(math.log1p(math.exp(0.4)), rel=1e-6)
        assert out.loss.item() == pytest.approx(0.9130153, rel=1e-6)
        assert out.metrics["rewards/chosen"].item() == pytest.approx(-0.4, rel=1e-6)
        assert out.metrics["rewards/rejected"].item() == pytest.approx(-1.0, rel=1e-6)
        assert out.metrics["logps/chosen"].item() == pytest.approx(-0.2, rel=1e-6)  # means, as TRL's CPO logs


def test_the_margin_gamma_asks_for_more_than_a_win():
    """gamma > 0: a pair the model already ranks right still has loss above log 2 until the gap passes gamma / beta."""
    scores = CandidateScores(torch.tensor([[-1.0, -1.2]]), torch.tensor([[1, 1]]))
    assert build_objective("simpo", beta=2.0, gamma=0.0)(scores).loss < math.log(2)
    assert build_objective("simpo", beta=2.0, gamma=1.0)(scores).loss > math.log(2)  # gap 0.2 < 1 / 2
