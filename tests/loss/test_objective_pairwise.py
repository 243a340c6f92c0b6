"""ORPO and SFT as objectives against the trainer's `orpo_loss` and TRL; the K-best pair reduction
of ORPO, DPO and SimPO against the same pairs laid out one per row."""

from __future__ import annotations

import pytest
import torch
from objective_fixtures import inputs_for, logits_batch, ragged_scores, trl_batch_metrics, without

from rlhf_asr.loss.logps import IGNORE_INDEX, logits_token_logps, sequence_logps
from rlhf_asr.loss.objectives import CandidateScores, build_objective
from rlhf_asr.loss.orpo import orpo_loss

PAIRWISE = ("orpo", "dpo", "simpo")


def _pair_batch(seed, batch=5):
    """Chosen and rejected sums/counts of a K = 2 batch, leaves for gradients, and a chosen span."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, 20, (batch, 2), generator=gen)
    sums = (-(torch.rand(batch, 2, generator=gen) * 3 + 1e-3) * tokens).requires_grad_()
    span_tokens = torch.minimum(tokens[:, 0], torch.randint(1, 8, (batch,), generator=gen))
    span = (sums[:, 0].detach() * span_tokens / tokens[:, 0]).requires_grad_()
    return sums, tokens, span, span_tokens


@pytest.mark.parametrize("alpha", [0.1, 1.0, 0.0])
@pytest.mark.parametrize("with_span", [False, True])
def test_orpo_with_one_rejected_is_the_trainers_orpo_loss(alpha, with_span):
    sums, tokens, span, span_tokens = _pair_batch(seed=int(alpha * 10) + with_span)
    odds = {"chosen_odds_logps_sum": span, "chosen_odds_tokens": span_tokens} if with_span else {}
    ref = orpo_loss(sums[:, 0], tokens[:, 0], sums[:, 1], tokens[:, 1], alpha, **odds)
    ref_grads = torch.autograd.grad(ref.loss, [sums, span], allow_unused=True)

    spans = {"chosen_span_logps": span, "chosen_span_tokens": span_tokens} if with_span else {}
    scores = CandidateScores.pair(sums[:, 0], tokens[:, 0], sums[:, 1], tokens[:, 1], **spans)
    out = build_objective("orpo", alpha=alpha)(scores)
    grads = torch.autograd.grad(out.loss, [sums, span], allow_unused=True)

    torch.testing.assert_close(out.loss, ref.loss)
    for ours, theirs in zip(grads, ref_grads):
        assert (ours is None) == (theirs is None)
        if ours is not None:
            torch.testing.assert_close(ours, theirs)
    m = out.metrics
    for key, value in (("nll_loss", ref.nll_loss), ("log_odds_ratio", ref.log_odds_ratio)):
        torch.testing.assert_close(m[key], value)
    torch.testing.assert_close(m["log_odds_chosen"], ref.log_odds_chosen)
    torch.testing.assert_close(m["rewards/chosen"], ref.chosen_rewards.mean())
    torch.testing.assert_close(m["rewards/rejected"], ref.rejected_rewards.mean())
    torch.testing.assert_close(m["rewards/margins"], (ref.chosen_rewards - ref.rejected_rewards).mean())
    torch.testing.assert_close(m["rewards/accuracies"], (ref.chosen_rewards > ref.rejected_rewards).float().mean())


def test_orpo_metrics_are_trls_names_and_values():
    """TRL's `ORPOTrainer.get_batch_loss_metrics` (its own loss and metric code) on the same log-probs."""
    trl_orpo = pytest.importorskip("trl.experimental.orpo.orpo_trainer").ORPOTrainer
    (logits_c, labels_c), (logits_r, labels_r) = logits_batch(1), logits_batch(2)
    chosen = trl_orpo.get_batch_logps(logits_c, labels_c, average_log_prob=True, is_encoder_decoder=True)
    rejected = trl_orpo.get_batch_logps(logits_r, labels_r, average_log_prob=True, is_encoder_decoder=True)
    nll = torch.nn.functional.cross_entropy(logits_c.flatten(0, 1), labels_c.flatten(), ignore_index=IGNORE_INDEX)
    forward = (chosen, rejected, logits_c, logits_r, nll)
    loss, trl_metrics = trl_batch_metrics(trl_orpo, "odds_ratio_loss", forward, beta=0.1)

    sums_c, n_c = sequence_logps(logits_token_logps(logits_c, labels_c), labels_c)
    sums_r, n_r = sequence_logps(logits_token_logps(logits_r, labels_r), labels_r)
    out = build_objective("orpo", alpha=0.1)(CandidateScores.pair(sums_c, n_c, sums_r, n_r))
    torch.testing.assert_close(out.loss, loss)
    shared = {key: value for key, value in trl_metrics.items() if not key.startswith("logits/")}
    assert set(out.metrics) == set(shared)
    for key, value in shared.items():
        assert out.metrics[key].item() == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_sft_is_orpos_nll_term_and_whispers_token_mean_cross_entropy():
    logits, labels = logits_batch(3)
    sums, counts = sequence_logps(logits_token_logps(logits, labels), labels)
    scores = CandidateScores(torch.stack([sums, sums - 1.0], 1), torch.stack([counts, counts], 1))
    out = build_objective("sft")(scores)
    cross_entropy = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(out.loss, cross_entropy)
    torch.testing.assert_close(out.loss, orpo_loss(sums, counts, sums - 1.0, counts).nll_loss)
    assert set(out.metrics) == {"nll_loss"}


def _one_pair_per_row(scores: CandidateScores) -> CandidateScores:
    """The present pairs of a K-best batch as a K = 2 batch, one pair a row (the chosen repeated)."""
    rows, cols = scores.present[:, 1:].nonzero(as_tuple=True)
    cols = cols + 1

    def pick(values):
        return None if values is None else torch.stack([values[rows, 0], values[rows, cols]], dim=1)

    span = scores.chosen_span_logps is not None
    return CandidateScores(
        pick(scores.logps),
        pick(scores.tokens),
        reference_logps=pick(scores.reference_logps),
        chosen_span_logps=scores.chosen_span_logps[rows, cols - 1, None] if span else None,
        chosen_span_tokens=scores.chosen_span_tokens[rows, cols - 1, None] if span else None,
    )


@pytest.mark.parametrize("name", PAIRWISE)
def test_k_best_averages_over_present_pairs_as_one_pair_per_row(name):
    """Chosen vs each present rejected, averaged over all present pairs of the batch = the same pairs
    in TRL's layout. The NLL counts each audio once, so it is compared apart (0-weighted here)."""
    objective = build_objective(name, **{"orpo": {"alpha": 0.7}, "dpo": {"beta": 0.3}}.get(name, {}))
    scores, _ = ragged_scores(seed=5, junk=-3.0)
    scores = inputs_for(objective, scores)
    k_best, rows = objective(scores), objective(_one_pair_per_row(scores))
    assert _one_pair_per_row(scores).logps.shape[0] == 3 + 1 + 0 + 2  # the present pairs of ragged_scores
    nll = {"orpo": 1.0}.get(name, 0.0)  # ORPO's NLL has weight 1; DPO's and SimPO's default to 0
    torch.testing.assert_close(
        k_best.loss - nll * k_best.metrics["nll_loss"], rows.loss - nll * rows.metrics["nll_loss"]
    )
    for key in k_best.metrics.keys() - {"nll_loss"}:
        torch.testing.assert_close(k_best.metrics[key], rows.metrics[key], msg=key)
    torch.testing.assert_close(k_best.metrics["nll_loss"], build_objective("sft")(scores).loss)


@pytest.mark.parametrize("name", PAIRWISE)
def test_a_batch_without_any_present_rejected_has_no_pair_term(name):
    scores, _ = ragged_scores(seed=1)
    only_chosen = CandidateScores(
        scores.logps, scores.tokens * torch.tensor([1, 0, 0, 0]), reference_logps=scores.reference_logps
    )
    out = build_objective(name)(only_chosen)
    nll = {"orpo": 1.0}.get(name, 0.0)
    torch.testing.assert_close(out.loss, nll * out.metrics["nll_loss"])
    assert out.metrics["rewards/accuracies"] == 0


def test_orpo_reads_the_chosen_span_in_each_pair():
    """--rejected_scope diverging: each pair compares the chosen over its own span, the NLL stays whole."""
    scores, _ = ragged_scores(seed=2, junk=-1.0)
    with_span, whole = build_objective("orpo")(scores), build_objective("orpo")(without(scores, "chosen_span"))
    torch.testing.assert_close(with_span.metrics["nll_loss"], whole.metrics["nll_loss"])
    assert not torch.isclose(with_span.metrics["logps/chosen"], whole.metrics["logps/chosen"])
    mask = scores.present[:, 1:]
    span_means = scores.chosen_span_logps / scores.chosen_span_tokens.clamp(min=1)
    torch.testing.assert_close(with_span.metrics["logps/chosen"], span_means[mask].mean())
