"""MORLHF: a one-hot preference is single-objective RL (Rewarded Soups' experts); the config refuses beta = 0
and settings that cannot work; the prompts are the task's distinct train prompts, capped and seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from moalign.config import ConfigError, TrainSettings
from moalign.methods.morlhf import MORLHFConfig, train_prompts
from moalign.methods.registry import get_method, method_config
from moalign.train.online import GRPOSettings, train_online

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Tell me about the sea.\n\nAssistant:"]


class Chars:
    name = "chars"

    def __call__(self, prompts, responses):
        return np.array([len(r) for r in responses], dtype=float)


class Words:
    name = "words"

    def __call__(self, prompts, responses):
        return -np.array([len(r.split()) for r in responses], dtype=float)


def _run(tiny_lm_dir, out, rewards, w):
    grpo = GRPOSettings(num_generations=2, max_completion_length=8, temperature=1.0)
    train = TrainSettings(learning_rate=1e-3, max_steps=2, per_device_train_batch_size=4, logging_steps=1)
    return load_file(train_online(tiny_lm_dir, PROMPTS, rewards, w, grpo, train, out, seed=1) / "model.safetensors")


def test_one_hot_preference_is_single_objective_rl(tiny_lm_dir, tmp_path):
    expert = _run(tiny_lm_dir, tmp_path / "onehot", [Chars(), Words()], (1.0, 0.0))
    single = _run(tiny_lm_dir, tmp_path / "single", [Chars()], (1.0,))
    assert all(torch.equal(expert[k], single[k]) for k in expert)  # the zero-weighted reward has no effect
    other = _run(tiny_lm_dir, tmp_path / "other", [Chars(), Words()], (0.0, 1.0))
    assert any(not torch.equal(expert[k], other[k]) for k in expert)


def test_registered_and_embedded_config_loads():
    assert get_method("morlhf").config_cls is MORLHFConfig
    config = method_config("morlhf")
    assert config.method.grpo.beta > 0 and config.method.reward_scale == "zscore"
    batch = config.method.train.per_device_train_batch_size * config.method.train.gradient_accumulation_steps
    assert batch % config.method.grpo.num_generations == 0


@pytest.mark.parametrize("override, match", [
    ("method.grpo.beta=0", r"grpo.beta=0: MORLHF maximises w \. r - beta \* KL"),
    ("method.grpo.scale_rewards=std", "grpo.scale_rewards"),
    ("method.reward_scale=minmax", "method.reward_scale"),
    ("method.max_prompts=0", "method.max_prompts"),
])
def test_bad_settings_fail_at_config_time(override, match):
    with pytest.raises(ConfigError, match=match):
        method_config("morlhf", None, [override])


def test_train_prompts_are_distinct_capped_and_seeded():
    config = method_config("morlhf", None, ["method.max_prompts=5"])
    first = train_prompts(config)
    assert len(first) == 5 == len(set(first)) and train_prompts(config) == first
    everything = train_prompts(method_config("morlhf", None, ["method.max_prompts=null"]))
    assert len(everything) == len(set(everything)) > 5 and set(first) <= set(everything)
    assert train_prompts(method_config("morlhf", None, ["method.max_prompts=5", "seed=1"])) != first
