"""DPO-LW: a one-hot preference is exactly DPO on that objective; bad preferences are refused."""

from __future__ import annotations

import re

import pytest
import torch

from moalign.config import TrainSettings
from moalign.data.schema import PairSet
from moalign.train.losses import dpo_pair_loss
from moalign.train.preference_run import build_preference_trainer
from moalign.train.weighting import FixedWeights


def pairset(objective, chosen, rejected, n=6):
    prompts = [f"\n\nHuman: Question {i}?\n\nAssistant:" for i in range(n)]
    return PairSet(prompts, [chosen] * n, [rejected] * n, [objective] * n)


PAIRS = {"kind": pairset("kind", "Happy to help, friend!", "No."), "short": pairset("short", "Yes.", "Well, let me see...")}


def one_step(tmp_path, tiny_lm_dir, pairs, w, sub):
    settings = TrainSettings(learning_rate=0.1, max_steps=1, per_device_train_batch_size=3, max_length=40,
                             max_grad_norm=0.0)
    trainer = build_preference_trainer(tiny_lm_dir, pairs, loss_fn=dpo_pair_loss(0.5), weighting=FixedWeights(w),
                                       settings=settings, output_dir=tmp_path / sub, seed=0,
                                       training_overrides={"optim": "sgd"})
    trainer.train()
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}, trainer


def test_one_hot_preference_reduces_to_dpo(tmp_path, tiny_lm_dir):
    lw, lw_trainer = one_step(tmp_path, tiny_lm_dir, PAIRS, [1.0, 0.0], "lw")
    dpo, _ = one_step(tmp_path, tiny_lm_dir, {"kind": PAIRS["kind"]}, [1.0], "dpo")
    for name in lw:
        torch.testing.assert_close(lw[name], dpo[name], atol=0, rtol=0)
    assert lw_trainer.history[0]["weight/short"] == 0.0


def test_mixed_preference_differs_from_both_ends(tmp_path, tiny_lm_dir):
    mid, _ = one_step(tmp_path, tiny_lm_dir, PAIRS, [0.5, 0.5], "mid")
    kind, _ = one_step(tmp_path, tiny_lm_dir, PAIRS, [1.0, 0.0], "kind")
    short, _ = one_step(tmp_path, tiny_lm_dir, PAIRS, [0.0, 1.0], "short")
    name = "lm_head.weight"
    # with SGD and no clipping, the update is linear in w: mid - start = (kind - start + short - start) / 2
    assert not torch.equal(mid[name], kind[name]) and not torch.equal(mid[name], short[name])
    torch.testing.assert_close(2 * mid[name], kind[name] + short[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("w", [[0.6, 0.6], [-0.5, 1.5], [float("nan"), 1.0]])
def test_fixed_weights_reject_points_off_the_simplex(w):
    with pytest.raises(ValueError, match="preference w="):
        FixedWeights(w)


@pytest.mark.parametrize("override,match", [
    ("method.beta=0", "method.beta=0"),
    ("method.beta=-0.5", "method.beta=-0.5"),
    ("method.reference=frozen", "method.reference='frozen'"),
    ("method.pairs.pair_mode=best", "method.pairs.pair_mode='best'"),
    ("method.pairs.pairs_from=web", "method.pairs.pairs_from='web'"),
    ("method.pairs.min_margin=-1", "method.pairs.min_margin=-1"),
    ("method.pairs.max_pairs_per_objective=0", "method.pairs.max_pairs_per_objective=0"),
])
def test_bad_dpo_family_settings_fail_at_config_time(override, match):
    from moalign.config import ConfigError, load_run_config
    from moalign.methods.dpo_lw import DPOConfig, DPOLWConfig

    for cls in (DPOLWConfig, DPOConfig):
        with pytest.raises(ConfigError, match=re.escape(match)):
            load_run_config(None, [override], method_cls=cls)
    load_run_config(None, ["method.beta=0.3", "method.reference=model"], method_cls=DPOLWConfig)  # good values pass


def test_dpo_objectives_may_not_be_empty():
    from moalign.config import ConfigError
    from moalign.methods.dpo_lw import DPOConfig

    with pytest.raises(ConfigError, match=r"method.objectives=\[\]"):
        DPOConfig(objectives=[])
