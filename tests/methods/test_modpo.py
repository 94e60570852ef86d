"""MODPO: the loss by hand, its margin and 1/w_k scaling, the w_k > 0 rule, margins from scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from moalign.data.schema import PairSet
from moalign.methods.modpo import check_main_weight, modpo_loss, score_margins
from moalign.train.losses import dpo_loss

t = torch.tensor


def test_modpo_loss_hand_computed():
    # gap = (-1 - -2) - (-3 - -2.5) = 1.5; margin = 0.25 * 2.0 + 0.25 * -1.0 = 0.25 (main column 0 ignored)
    # logit = (0.5 * 1.5 - 0.25) / 0.5 = 1.0
    loss = modpo_loss(t([-1.0]), t([-3.0]), t([-2.0]), t([-2.5]), t([[99.0, 2.0, -1.0]]), [0.5, 0.25, 0.25], beta=0.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.0)))


def test_modpo_main_index_and_orientation():
    # main = 1: w_main = 0.2; margin = 0.8 * 0.5 = 0.4; gap = 1; logit = (0.1 * 1 - 0.4) / 0.2 = -1.5
    loss = modpo_loss(t([0.0]), t([-1.0]), t([0.0]), t([0.0]), t([[0.5, 7.0]]), [0.8, 0.2], beta=0.1, main=1)
    assert loss.item() == pytest.approx(math.log1p(math.exp(1.5)))


def test_modpo_with_no_weight_on_margins_is_dpo():
    gen = torch.Generator().manual_seed(0)
    logps = [torch.randn(6, generator=gen) for _ in range(4)]
    margins = torch.randn(6, 2, generator=gen)
    got = modpo_loss(*logps, margins, [1.0, 0.0], beta=0.3)
    torch.testing.assert_close(got, dpo_loss(*logps, beta=0.3))


def test_modpo_scaling_by_one_over_w_main():
    # with zero margins, L(w) = -log sigmoid(beta * gap / w_main): w_main = 0.5 doubles the logit
    logps = (t([-1.0]), t([-2.0]), t([-1.0]), t([-1.0]))
    got = modpo_loss(*logps, t([[0.0, 0.0]]), [0.5, 0.5], beta=0.2)
    assert got.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.4))))


@pytest.mark.parametrize("w", [[0.0, 1.0], [-0.1, 1.1]])
def test_modpo_requires_positive_main_weight(w):
    with pytest.raises(ValueError, match=r"must be > 0"):
        check_main_weight(w, 0)
    with pytest.raises(ValueError, match=r"must be > 0"):
        modpo_loss(t([0.0]), t([0.0]), t([0.0]), t([0.0]), t([[0.0, 0.0]]), w, beta=0.1)


def test_score_margins_z_scale_and_zero_main_column():
    pairs = PairSet(["p", "p"], ["a", "b"], ["c", "d"], ["x", "x"],
                    chosen_scores=np.array([[1.0, 4.0], [2.0, 2.0]]), rejected_scores=np.array([[0.0, 0.0], [1.0, 2.0]]),
                    objectives=["x", "y"])
    margins = score_margins(pairs, main=0, normalize=False)
    assert margins.tolist() == [[0.0, 4.0], [0.0, 0.0]]
    std_y = np.std([4.0, 2.0, 0.0, 2.0])
    assert score_margins(pairs, main=0)[:, 1].tolist() == pytest.approx([4.0 / std_y, 0.0])
    with pytest.raises(ValueError, match="margin='dpo'"):
        score_margins(PairSet(["p"], ["a"], ["b"], ["x"]), main=0)


def test_score_margins_follow_the_run_objective_order():
    pairs = PairSet(["p"], ["a"], ["b"], ["y"], chosen_scores=np.array([[5.0, 1.0]]),
                    rejected_scores=np.array([[2.0, 0.0]]), objectives=["y", "x"])
    assert score_margins(pairs, main=1, normalize=False, objectives=["x", "y"]).tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="no scores for"):
        score_margins(pairs, main=0, objectives=["x", "z"])


@pytest.mark.parametrize("kw,match", [({"beta": 0.0}, "method.beta"), ({"margin": "reward"}, "method.margin='reward'"),
                                      ({"reference": "x"}, "method.reference='x'")])
def test_bad_modpo_settings_fail_at_config_time(kw, match):
    from moalign.config import ConfigError
    from moalign.methods.modpo import MODPOConfig

    with pytest.raises(ConfigError, match=match):
        MODPOConfig(**kw)
    assert MODPOConfig(beta=0.2, margin="scores").margin == "scores"
