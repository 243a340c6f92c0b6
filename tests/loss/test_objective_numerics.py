"""Every objective on ragged K-best batches and extreme log-probs: finite loss, metrics and gradients,
and no gradient at all for absent candidates, whatever their slots hold."""

from __future__ import annotations

import pytest
import torch
from objective_fixtures import inputs_for, ragged_scores

from rlhf_asr.loss.objectives import OBJECTIVES, CandidateScores, build_objective

NAMES = list(OBJECTIVES)


def _loss_and_grads(objective, scores, leaves):
    out = objective(inputs_for(objective, scores))
    used = {name: leaf for name, leaf in leaves.items() if leaf.requires_grad}
    grads = torch.autograd.grad(out.loss, list(used.values()), allow_unused=True)
    return out, {name: grad for name, grad in zip(used, grads) if grad is not None}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("junk", [float("nan"), float("inf"), -1e30])
def test_ragged_k_best_gives_finite_loss_and_no_gradient_to_absent_slots(name, junk):
    scores, leaves = ragged_scores(junk=junk)
    out, grads = _loss_and_grads(build_objective(name), scores, leaves)
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(value) for value in out.metrics.values()), out.metrics
    absent = ~scores.present
    for leaf_name, grad in grads.items():
        holes = absent[:, 1:] if leaf_name == "chosen_span_logps" else absent
        assert torch.isfinite(grad).all(), leaf_name
        assert torch.count_nonzero(grad[holes]) == 0, leaf_name
    assert grads["logps"][~absent].abs().sum() > 0  # present candidates do learn
    # what an absent slot holds changes nothing
    reference = build_objective(name)(inputs_for(build_objective(name), ragged_scores(junk=-2.0)[0]))
    torch.testing.assert_close(out.loss, reference.loss)


def _extreme_scores(dtype):
    """Pairs of a near-certain chosen (sum -1e-6 over 3 tokens) against a hopeless rejected (sum -1e4),
    the reverse, two hopeless ones, and two near-certain ones."""
    chosen = [-1e-6, -1e4, -1e4, -1e-7]
    rejected = [-1e4, -1e-6, -9e3, -2e-7]
    logps = torch.tensor([chosen, rejected], dtype=dtype).T.contiguous().requires_grad_()
    tokens = torch.tensor([[3, 40], [3, 40], [40, 40], [1, 1]])
    reference = torch.tensor([[-5.0, -5.0]] * 4, dtype=dtype)
    errors = torch.tensor([[0.0, 4.0]] * 4, dtype=dtype)
    return logps, CandidateScores(logps, tokens, reference_logps=reference, word_errors=errors)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_extreme_log_probs_give_finite_gradients(name, dtype):
    logps, scores = _extreme_scores(dtype)
    out = build_objective(name)(scores)
    (grad,) = torch.autograd.grad(out.loss, logps)
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    assert grad.dtype == dtype and torch.isfinite(grad).all(), grad
    assert all(torch.isfinite(value) for value in out.metrics.values()), out.metrics
