"""MWER (arXiv 1712.01818, section 2.2) against numbers worked by hand: no TRL counterpart exists."""

from __future__ import annotations

import pytest
import torch

from rlhf_asr.loss.objectives import CandidateScores, build_objective

NAN = float("nan")


def _hand_batch(junk=NAN):
    """Audio 1: three candidates, summed log-probs -2, -3, -4, word errors 0 (the reference), 1, 3.
    Audio 2: two candidates, -1 and -1, errors 0 and 2; its third slot is absent (tokens 0)."""
    logps = torch.tensor([[-2.0, -3.0, -4.0], [-1.0, -1.0, junk]], requires_grad=True)
    errors = torch.tensor([[0.0, 1.0, 3.0], [0.0, 2.0, junk]])
    return logps, CandidateScores(logps, torch.tensor([[2, 3, 4], [1, 2, 0]]), word_errors=errors)


def test_hand_example():
    """Audio 1: P = softmax(-2, -3, -4) = (0.665241, 0.244728, 0.090031); mean errors 4/3;
    risk = 0.665241 * (0 - 4/3) + 0.244728 * (1 - 4/3) + 0.090031 * (3 - 4/3) = -0.818513;
    expected errors 0.244728 * 1 + 0.090031 * 3 = 0.514820.
    Audio 2: P = (0.5, 0.5); mean 1; risk 0.5 * (0 - 1) + 0.5 * (2 - 1) = 0; expected 1.
    MWER = (-0.818513 + 0) / 2 = -0.409257; NLL of candidate 0 = (2 + 1) / (2 + 1) tokens = 1.0;
    loss = -0.409257 + 0.01 * 1.0 = -0.399257."""
    logps, scores = _hand_batch()
    out = build_objective("mwer", ce_weight=0.01)(scores)
    assert out.loss.item() == pytest.approx(-0.399257, abs=1e-6)
    assert out.metrics["mwer/loss"].item() == pytest.approx(-0.409257, abs=1e-6)
    assert out.metrics["mwer/expected_errors"].item() == pytest.approx((0.514820 + 1) / 2, abs=1e-6)
    assert out.metrics["mwer/mean_errors"].item() == pytest.approx((4 / 3 + 1) / 2, abs=1e-6)
    assert out.metrics["nll_loss"].item() == pytest.approx(1.0)

    # d MWER / d log pi_i = P_i (W_i - expected) / 2 audios; the NLL adds -0.01 / 3 tokens on candidate 0
    out.loss.backward()
    expected_grad = torch.tensor(
        [
            [0.665241 * (0 - 0.514820) / 2 - 0.01 / 3, 0.244728 * (1 - 0.514820) / 2, 0.090031 * (3 - 0.514820) / 2],
            [0.5 * (0 - 1) / 2 - 0.01 / 3, 0.5 * (2 - 1) / 2, 0.0],
        ]
    )
    torch.testing.assert_close(logps.grad, expected_grad, atol=1e-6, rtol=0)


def test_reference_outside_the_list_is_the_papers_form():
    """reference_in_list=False: the list is the hypotheses alone. Audio 1: P = softmax(-3, -4) =
    (0.731059, 0.268941), mean errors 2, risk 0.731059 * (1 - 2) + 0.268941 * (3 - 2) = -0.462117.
    Audio 2 keeps one hypothesis: nothing to choose between, left out of the mean."""
    _, scores = _hand_batch()
    out = build_objective("mwer", ce_weight=0.0, reference_in_list=False)(scores)
    assert out.loss.item() == pytest.approx(-0.462117, abs=1e-6)
    assert out.metrics["mwer/expected_errors"].item() == pytest.approx(0.731059 + 3 * 0.268941, abs=1e-6)


def test_descent_moves_probability_to_candidates_with_fewer_errors():
    gen = torch.Generator().manual_seed(0)
    logps = (-torch.rand(8, 5, generator=gen) * 20).requires_grad_()
    errors = torch.randint(0, 6, (8, 5), generator=gen).float()
    errors[:, 0] = 0.0
    scores = CandidateScores(logps, torch.full((8, 5), 7), word_errors=errors)
    objective = build_objective("mwer", ce_weight=0.0)
    before = objective(scores)
    before.loss.backward()
    # the sign of each gradient: candidates below the expected errors are pushed up, those above down
    expected = before.metrics["mwer/expected_errors"]  # a batch mean; compare per audio below
    probs = torch.softmax(logps.detach(), dim=1)
    per_audio = (probs * errors).sum(1, keepdim=True)
    assert torch.equal(logps.grad < 0, errors < per_audio)
    with torch.no_grad():
        logps -= 2.0 * logps.grad
    after = objective(scores)
    assert after.metrics["mwer/expected_errors"] < expected
    assert after.loss < before.loss


@pytest.mark.parametrize("junk", [NAN, float("inf"), -1e30, 0.0])
def test_absent_slots_change_nothing_and_get_no_gradient(junk):
    logps, scores = _hand_batch(junk)
    out = build_objective("mwer")(scores)
    assert out.loss.item() == pytest.approx(-0.399257, abs=1e-6)
    out.loss.backward()
    assert logps.grad[1, 2] == 0 and torch.isfinite(logps.grad).all()


def test_an_audio_with_only_its_reference_adds_nothing():
    _, scores = _hand_batch()
    alone = CandidateScores(
        torch.cat([scores.logps, torch.tensor([[-5.0, NAN, NAN]])]),
        torch.cat([scores.tokens, torch.tensor([[5, 0, 0]])]),
        word_errors=torch.cat([scores.word_errors, torch.tensor([[0.0, NAN, NAN]])]),
    )
    with_alone = build_objective("mwer", ce_weight=0.0)(alone)
    assert with_alone.loss.item() == pytest.approx(-0.409257, abs=1e-6)  # still the mean over the two lists


def test_equal_errors_give_no_mwer_gradient():
    """Mean-subtracted errors: a list whose candidates are all equally wrong has nothing to learn."""
    logps = torch.tensor([[-2.0, -7.0, -3.0]], requires_grad=True)
    scores = CandidateScores(logps, torch.tensor([[3, 3, 3]]), word_errors=torch.full((1, 3), 2.0))
    out = build_objective("mwer", ce_weight=0.0)(scores)
    out.loss.backward()
    assert out.loss.item() == 0.0 and torch.count_nonzero(logps.grad) == 0


def test_a_list_of_one_candidate_is_refused():
    scores = CandidateScores(torch.tensor([[-2.0]]), torch.tensor([[2]]), word_errors=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="mwer needs K >= 2"):
        build_objective("mwer")(scores)
