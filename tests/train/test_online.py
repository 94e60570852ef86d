"""moalign.train.online: the reward adapter, TRL's scalarisation of w . r (hand numbers), the beta > 0 rule, a
short GRPO run (full and LoRA) and resuming a killed run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TrainerHooks
from moalign.config import ConfigError, LoraSettings, TrainSettings
from moalign.rewards.normalize import ZScore
from moalign.train.online import GRPOSettings, build_grpo_trainer, reward_functions, train_online

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Tell me about the sea.\n\nAssistant:"]


class Chars:
    name = "chars"

    def __call__(self, prompts, responses):
        return np.array([len(r) for r in responses], dtype=float)


class CountA:
    name = "count_a"

    def __call__(self, prompts, responses):
        return np.array([r.count("a") for r in responses], dtype=float)


class Fixed:
    """Returns preset scores, whatever the completions are (so TRL's advantages are hand-computable)."""

    def __init__(self, name, values):
        self.name, self.values = name, np.asarray(values, dtype=float)

    def __call__(self, prompts, responses):
        assert len(responses) == len(self.values)
        return self.values


def _cut(text: str) -> str:
    return text.split("\n\nHuman:")[0].strip()


def test_reward_adapter_matches_hand_computed_w_dot_r():
    zscore = ZScore(["chars", "count_a"], mean=[2.0, 1.0], std=[2.0, 0.5])
    funcs = reward_functions([Chars(), CountA()], ["chars", "count_a"], zscore=zscore, clean=_cut)
    completions = ["aa b", "a\n\nHuman: aaaa", "bbb"]  # cleaned: "aa b", "a", "bbb"
    columns = [f(prompts=["p"] * 3, completions=completions, trainer_state=None) for f in funcs]
    assert [f.__name__ for f in funcs] == ["chars", "count_a"]  # TRL logs rewards/<name>/mean
    assert columns[0] == pytest.approx([1.0, -0.5, 0.5])  # (4, 1, 3) chars -> (x - 2) / 2
    assert columns[1] == pytest.approx([2.0, 0.0, -2.0])  # (2, 1, 0) a's -> (x - 1) / 0.5
    w = np.array([0.25, 0.75])
    assert (np.array(columns).T @ w).tolist() == pytest.approx([1.75, -0.125, -1.375])
    raw = reward_functions([Chars(), CountA()], ["chars", "count_a"])
    assert raw[0](prompts=["p"], completions=["abc"]) == [3.0]


A, B = [1, 3, 0, 2, 5, 1], [2, 0, 4, 0, 1, 1]  # two objectives' scores of 2 prompts x 3 completions
# s = 0.25 A + 0.75 B = (1.75, 0.75, 3.0 | 0.5, 2.0, 1.0); group means 1.8333 and 1.1667
CASES = {
    ("sum_then_normalize", "none", (0.25, 0.75)): [-0.0833, -1.0833, 1.1667, -0.6667, 0.8333, -0.1667],
    ("sum_then_normalize", "group", (0.25, 0.75)): [-0.0739, -0.9609, 1.0348, -0.8728, 1.0909, -0.2182],
    ("sum_then_normalize", "batch", (0.25, 0.75)): [-0.0891, -1.1580, 1.2471, -0.7126, 0.8908, -0.1782],
    ("normalize_then_sum", "group", (0.25, 0.75)): [-0.0869, -0.7599, 0.8468, -1.5064, 1.1357, 0.3707],
    ("sum_then_normalize", "group", (1.0, 0.0)): [-0.2182, 1.0910, -0.8728, -0.3202, 1.1208, -0.8006],  # A only
}


@pytest.mark.parametrize("aggregation, scale, w", list(CASES))
def test_trl_advantages_from_the_weighted_rewards_match_hand_numbers(tiny_lm_dir, tmp_path, aggregation, scale, w):
    settings = GRPOSettings(num_generations=3, max_completion_length=4, aggregation=aggregation, scale_rewards=scale)
    train = TrainSettings(max_steps=1, per_device_train_batch_size=6, logging_steps=1)
    trainer = build_grpo_trainer(tiny_lm_dir, PROMPTS, [Fixed("a", A), Fixed("b", B)], w, settings, train,
                                 tmp_path, seed=0)
    assert trainer.args.reward_weights == list(w) and trainer.args.beta == settings.beta
    trainer.model.train()
    batch = [{"prompt": p} for p in PROMPTS for _ in range(3)]
    out = trainer._generate_and_score_completions(batch)  # TRL's own combination of the per-objective rewards
    assert out["advantages"].tolist() == pytest.approx(CASES[(aggregation, scale, w)], abs=1e-4)
    expected_mean = float(np.mean(np.array(A) * w[0] + np.array(B) * w[1]))  # 1.5 for (0.25, 0.75); 2.0 one-hot
    assert trainer._metrics["train"]["reward"][-1] == pytest.approx(expected_mean)
    assert trainer._metrics["train"]["rewards/a/mean"][-1] == pytest.approx(2.0)


def test_beta_zero_and_bad_settings_are_refused(tiny_lm_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"grpo.beta=0: MORLHF .* KL penalty must be > 0"):
        GRPOSettings(beta=0.0)
    with pytest.raises(ConfigError, match="grpo.beta"):
        GRPOSettings(beta=-0.1)
    with pytest.raises(ConfigError, match="grpo.num_generations"):
        GRPOSettings(num_generations=1)
    with pytest.raises(ConfigError, match="grpo.aggregation"):
        GRPOSettings(aggregation="sum")
    rewards = [Fixed("a", A[:4]), Fixed("b", B[:4])]
    with pytest.raises(ConfigError, match="not a multiple of grpo.num_generations=3"):
        build_grpo_trainer(tiny_lm_dir, PROMPTS, rewards, (0.5, 0.5), GRPOSettings(num_generations=3),
                           TrainSettings(per_device_train_batch_size=4), tmp_path, seed=0)
    with pytest.raises(ValueError, match="non-negative weights summing to 1"):
        build_grpo_trainer(tiny_lm_dir, PROMPTS, rewards, (0.5, 0.6), GRPOSettings(), TrainSettings(), tmp_path, seed=0)


def _settings(steps: int, save_steps: int = 0, lora: int = 0):
    grpo = GRPOSettings(num_generations=2, max_completion_length=8, temperature=1.0)
    train = TrainSettings(learning_rate=1e-3, max_steps=steps, per_device_train_batch_size=4, logging_steps=1,
                          save_steps=save_steps, lr_scheduler_type="constant",
                          lora=LoraSettings(r=lora, alpha=8.0 if lora else 16.0))
    return grpo, train


def _weights(folder: Path, name: str) -> dict:
    return load_file(Path(folder) / name)


@pytest.mark.parametrize("lora", [0, 4])
def test_two_grpo_steps_change_the_weights_and_write_history(tiny_lm_dir, tmp_path, lora):
    grpo, train = _settings(2, lora=lora)
    saved = train_online(tiny_lm_dir, PROMPTS, [Chars(), CountA()], (0.5, 0.5), grpo, train, tmp_path / "out", seed=0)
    rows = [json.loads(line) for line in (saved / "history.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all({"reward", "rewards/chars/mean", "rewards/count_a/mean", "kl"} <= r.keys() for r in steps)
    assert steps[1]["kl"] > 0  # the policy moved away from the reference after one update
    if lora:
        adapter = _weights(saved, "adapter_model.safetensors")
        lora_b = [v for k, v in adapter.items() if "lora_B" in k]
        assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at 0: nonzero means it trained
        assert not (saved / "ref").exists()  # one adapter saved, no reference copy
    else:
        before, after = _weights(tiny_lm_dir, "model.safetensors"), _weights(saved, "model.safetensors")
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert len(changed) > len(before) // 2


def test_a_run_killed_after_checkpoint_2_resumes_to_the_uninterrupted_weights(tiny_lm_dir, tmp_path, monkeypatch):
    grpo, train = _settings(4, save_steps=2)
    rewards = [Chars(), CountA()]
    straight = train_online(tiny_lm_dir, PROMPTS, rewards, (0.3, 0.7), grpo, train, tmp_path / "a", seed=3,
                            checkpoint_dir=tmp_path / "ca")

    hooks = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer")
    fired = hooks.kill_after(2)
    with pytest.raises(hooks.Killed):
        train_online(tiny_lm_dir, PROMPTS, rewards, (0.3, 0.7), grpo, train, tmp_path / "b", seed=3,
                     checkpoint_dir=tmp_path / "cb")
    assert fired and not (tmp_path / "b").exists()
    hooks.clear()
    steps = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer").record_steps()
    resumed = train_online(tiny_lm_dir, PROMPTS, rewards, (0.3, 0.7), grpo, train, tmp_path / "b", seed=3,
                           checkpoint_dir=tmp_path / "cb")
    assert steps[str(tmp_path / "cb")] == [3, 4]  # resumed after the step-2 checkpoint
    a, b = _weights(straight, "model.safetensors"), _weights(resumed, "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
