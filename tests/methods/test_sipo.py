"""SIPO's building blocks: the Pareto filter on hand-made score tables, the new pairs, and the re-alignment
loss DPO + alpha * NLL against hand-computed values and gradients (alpha = 0 is exactly DPO)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from moalign.methods.sipo import pareto_survivor, survivor_pairs
from moalign.train.losses import PairLogps, dpo_nll_pair_loss, dpo_pair_loss

CHOSEN, REJECTED = np.array([1.0, 2.0, 0.5]), np.array([0.0, 2.5, 0.4])


def test_only_a_candidate_above_both_originals_under_every_reward_survives():
    table = np.array([
        [2.0, 2.6, 0.6],   # beats both everywhere: sum 5.2
        [9.0, 2.5, 9.0],   # ties the rejected response on reward 1 (2.5 = 2.5): out
        [1.0, 3.0, 1.0],   # equal to the chosen on reward 0: out
        [3.0, 2.7, 0.6],   # beats both everywhere: sum 6.3, the best
    ])
    assert pareto_survivor(table, CHOSEN, REJECTED) == 3
    assert pareto_survivor(table[:3], CHOSEN, REJECTED) == 0
    assert pareto_survivor(table[1:3], CHOSEN, REJECTED) is None
    assert pareto_survivor(np.vstack([CHOSEN, REJECTED]), CHOSEN, REJECTED) is None  # the originals themselves
    tied = np.array([[2.0, 3.0, 1.0], [2.5, 2.75, 0.75]])  # equal sums (6.0, exact in binary): the first is kept
    assert pareto_survivor(tied, CHOSEN, REJECTED) == 0


def test_bad_score_tables_are_refused():
    with pytest.raises(ValueError, match=r"must be \(C, R\)"):
        pareto_survivor(np.ones((2, 2)), CHOSEN, REJECTED)
    with pytest.raises(ValueError, match="finite"):
        pareto_survivor(np.array([[np.nan, 3.0, 1.0]]), CHOSEN, REJECTED)


def test_the_survivor_is_chosen_over_each_original_for_every_objective():
    pairs = survivor_pairs("Q?", "best", "a", "b", ["helpful", "harmless"], pair_id="7")
    assert list(zip(pairs.objective, pairs.chosen, pairs.rejected)) == [
        ("helpful", "best", "a"), ("helpful", "best", "b"), ("harmless", "best", "a"), ("harmless", "best", "b")]
    assert pairs.prompts == ["Q?"] * 4 and pairs.ids[1] == "helpful:7:over-rejected"


def _logps(policy_chosen):
    t = torch.tensor
    return PairLogps(policy_chosen, t([-4.0, -3.0], dtype=torch.float64), t([-5.0, -2.0], dtype=torch.float64),
                     t([-4.5, -2.5], dtype=torch.float64), chosen_tokens=t([4, 2]), rejected_tokens=t([3, 3]))


def test_the_loss_is_dpo_plus_alpha_times_the_chosen_nll_per_token():
    beta, alpha = 0.5, 0.1
    chosen = torch.tensor([-6.0, -1.0], dtype=torch.float64, requires_grad=True)
    loss = dpo_nll_pair_loss(beta, alpha)(_logps(chosen), 0)
    gaps = [(-6.0 + 5.0) - (-4.0 + 4.5), (-1.0 + 2.0) - (-3.0 + 2.5)]  # -1.5, 1.5
    expected = [math.log1p(math.exp(-beta * g)) - alpha * c / n for g, c, n in zip(gaps, [-6.0, -1.0], [4, 2])]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))
    loss.sum().backward()  # d/d log pi(y_w) = -beta * sigmoid(-beta * gap) - alpha / |y_w|
    grads = [-beta / (1 + math.exp(beta * g)) - alpha / n for g, n in zip(gaps, [4, 2])]
    torch.testing.assert_close(chosen.grad, torch.tensor(grads, dtype=torch.float64))


def test_alpha_zero_is_exactly_dpo_and_a_negative_alpha_is_refused():
    logps = _logps(torch.tensor([-6.0, -1.0], dtype=torch.float64))
    assert torch.equal(dpo_nll_pair_loss(0.5, alpha=0.0)(logps, 1), dpo_pair_loss(0.5)(logps, 1))
    with pytest.raises(ValueError, match="alpha=-0.1"):
        dpo_nll_pair_loss(0.5, alpha=-0.1)
