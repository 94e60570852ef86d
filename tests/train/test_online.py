"""moalign.train.online: the reward adapter, TRL's scalarisation of w . r (hand numbers), the beta > 0 rule, a
short GRPO run (full and LoRA) and resuming a killed run; a preference drawn per generation batch (Panacea's
RLHF variant): lambda . r, lambda held in the SVD-LoRA from generation to loss, its seeded sequence and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TrainerHooks
from moalign.config import ConfigError, LoraSettings, TrainSettings
from moalign.models.adapters import SVDLoraAdapter
from moalign.models.svd_lora import SVDLoraSpec, panacea_layers, set_preference
from moalign.rewards.normalize import ZScore
from moalign.train.online import GRPOSettings, build_grpo_trainer, reward_functions, train_online
from moalign.train.schedule import PreferenceSchedule

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


def test_the_vllm_rollout_backend_is_trls_own_and_refused_where_vllm_cannot_run(tmp_path, monkeypatch):
    """``grpo.backend=vllm`` sets TRL's ``use_vllm`` with the engine settings; on a machine without vLLM or a GPU
    it is refused with the reason and the way back; the setting leaves existing MORLHF stage hashes alone."""
    import dataclasses

    import moalign.train.online as online
    from moalign.config import to_dict
    from moalign.pipeline import inputs_hash

    monkeypatch.setattr(online, "vllm_unavailable_reason", lambda: "vLLM needs a CUDA GPU and this machine has none")
    with pytest.raises(ConfigError, match="grpo.backend=vllm: vLLM needs a CUDA GPU.*set grpo.backend=hf"):
        online.grpo_config(GRPOSettings(backend="vllm"), TrainSettings(), tmp_path, 0, (0.5, 0.5))
    monkeypatch.setattr(online, "vllm_unavailable_reason", lambda: None)
    settings = GRPOSettings(backend="vllm", vllm_mode="server", vllm_gpu_memory_utilization=0.6)
    assert settings.trl_generation_kwargs() == {"use_vllm": True, "vllm_mode": "server",
                                                "vllm_gpu_memory_utilization": 0.6}
    trl_config = online.grpo_config(GRPOSettings(backend="vllm"), TrainSettings(), tmp_path, 0, (0.5, 0.5))
    assert (trl_config.use_vllm, trl_config.vllm_mode, trl_config.vllm_gpu_memory_utilization) == (True, "colocate", 0.3)
    assert online.grpo_config(GRPOSettings(), TrainSettings(), tmp_path, 0, (0.5, 0.5)).use_vllm is False
    with pytest.raises(ConfigError, match="grpo.backend"):
        GRPOSettings(backend="sglang")
    with pytest.raises(ConfigError, match="grpo.vllm_mode"):
        GRPOSettings(vllm_mode="remote")
    before = {k: v for k, v in to_dict(GRPOSettings()).items()
              if k not in ("backend", "vllm_mode", "vllm_gpu_memory_utilization")}
    assert inputs_hash({"grpo": GRPOSettings()}) == inputs_hash({"grpo": before})
    assert inputs_hash({"grpo": dataclasses.replace(GRPOSettings(), vllm_mode="server")}) == inputs_hash({"grpo": before})
    assert inputs_hash({"grpo": GRPOSettings(backend="vllm")}) != inputs_hash({"grpo": before})


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


# a preference per generation batch (Panacea's RLHF variant) ----------------------------------------------------

SVD = SVDLoraAdapter(SVDLoraSpec(2))
DIRICHLET = PreferenceSchedule(kind="dirichlet", alpha=1.0, seed=5)


def test_a_fixed_schedule_scores_as_the_fixed_weights_and_a_drawn_lambda_scalarises_the_batch(tiny_lm_dir, tmp_path):
    settings = GRPOSettings(num_generations=3, max_completion_length=4)
    train = TrainSettings(max_steps=1, per_device_train_batch_size=6, logging_steps=1)
    batch = [{"prompt": p} for p in PROMPTS for _ in range(3)]
    fixed = build_grpo_trainer(tiny_lm_dir, PROMPTS, [Fixed("a", A), Fixed("b", B)],
                               PreferenceSchedule.fixed((0.25, 0.75)), settings, train, tmp_path / "f", seed=0)
    fixed.model.train()
    out = fixed._generate_and_score_completions(batch)
    assert out["advantages"].tolist() == pytest.approx(CASES[("sum_then_normalize", "group", (0.25, 0.75))], abs=1e-4)
    assert fixed._metrics["train"]["reward"][-1] == pytest.approx(1.5)  # mean of 0.25 A + 0.75 B, by hand

    drawn = build_grpo_trainer(tiny_lm_dir, PROMPTS, [Fixed("a", A), Fixed("b", B)], DIRICHLET, settings, train,
                               tmp_path / "d", seed=0)
    drawn.model.train()
    drawn._generate_and_score_completions(batch)
    lam = DIRICHLET.draw(0, 2)
    assert drawn.preferences == [(0, lam.tolist())] and drawn.reward_weights.tolist() == pytest.approx(lam.tolist())
    assert drawn._metrics["train"]["reward"][-1] == pytest.approx(2.0 * lam[0] + lam[1] * 4 / 3, rel=1e-6)  # means 2, 4/3
    assert drawn._metrics["train"]["rewards/a/mean"][-1] == pytest.approx(2.0)  # each objective still logged
    assert drawn._metrics["train"]["preference/a"][-1] == pytest.approx(lam[0])


def _svd_settings(steps: int, *, batch: int = 4, accumulation: int = 1, iterations: int = 1, save_steps: int = 0):
    grpo = GRPOSettings(num_generations=2, max_completion_length=6, temperature=1.0, num_iterations=iterations)
    train = TrainSettings(learning_rate=5e-3, max_steps=steps, per_device_train_batch_size=batch, logging_steps=1,
                          gradient_accumulation_steps=accumulation, save_steps=save_steps,
                          lr_scheduler_type="constant", lora=LoraSettings(r=2, alpha=4.0))
    return grpo, train


@pytest.mark.parametrize("accumulation, iterations, generations", [(2, 1, [0, 1, 2]), (1, 2, [0, 1])])
def test_the_lambda_of_each_generation_batch_is_the_one_in_its_loss_steps(tiny_lm_dir, tmp_path, accumulation,
                                                                        iterations, generations):
    """accumulation 2: two buffered micro-batches per generation (TRL's steps_per_generation = 2); iterations 2:
    one generation reused for two optimiser steps (mu = 2). Every forward of an SVD-LoRA layer, generation and
    reference (no gradient) and loss (gradient) alike, runs with the lambda drawn for the latest batch."""
    grpo, train = _svd_settings(3 if iterations == 1 else 4, batch=2 if accumulation == 2 else 4,
                                accumulation=accumulation, iterations=iterations)
    trainer = build_grpo_trainer(tiny_lm_dir, PROMPTS, [Chars(), CountA()], DIRICHLET, grpo, train, tmp_path,
                                 seed=0, adapter=SVD, model_hook=set_preference)
    seen = []  # (batches drawn so far, gradient on, lambda in the layer)
    layer = panacea_layers(trainer.model)[0]
    layer.register_forward_hook(lambda m, i, o: seen.append((len(trainer.preferences), torch.is_grad_enabled(),
                                                             m._preference.clone())))
    trainer.train()
    assert [g for g, _ in trainer.preferences] == generations  # one draw per generation batch, in order
    lams = [lam for _, lam in trainer.preferences]
    assert lams == [DIRICHLET.draw(g, 2).tolist() for g in generations]  # the seeded stream
    assert len({tuple(lam) for lam in lams}) == len(lams)  # a fresh lambda for every batch
    for count, _, written in seen:
        assert torch.equal(written, torch.tensor(lams[count - 1], dtype=torch.float32))
    batches = list(range(1, len(generations) + 1))
    assert sorted({count for count, grad, _ in seen if not grad}) == batches  # generated (and referenced) with it
    loss_forwards = [count for count, grad, _ in seen if grad]
    assert sorted(set(loss_forwards)) == batches  # and each batch's lambda reached its loss steps
    assert len(loss_forwards) == (3 * accumulation if iterations == 1 else 4)  # one per micro-batch


def test_a_preference_sampling_run_resumes_to_the_uninterrupted_adapter_and_lambdas(tiny_lm_dir, tmp_path,
                                                                                   monkeypatch):
    grpo, train = _svd_settings(4, save_steps=2)
    kwargs = {"seed": 3, "adapter": SVD, "model_hook": set_preference}
    rewards = [Chars(), CountA()]
    straight = train_online(tiny_lm_dir, PROMPTS, rewards, DIRICHLET, grpo, train, tmp_path / "a",
                            checkpoint_dir=tmp_path / "ca", **kwargs)
    hooks = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer")
    fired = hooks.kill_after(2)
    with pytest.raises(hooks.Killed):
        train_online(tiny_lm_dir, PROMPTS, rewards, DIRICHLET, grpo, train, tmp_path / "b",
                     checkpoint_dir=tmp_path / "cb", **kwargs)
    assert fired and (tmp_path / "cb" / "checkpoint-2" / "preference_schedule.json").is_file()
    hooks.clear()
    steps = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer").record_steps()
    resumed = train_online(tiny_lm_dir, PROMPTS, rewards, DIRICHLET, grpo, train, tmp_path / "b",
                           checkpoint_dir=tmp_path / "cb", **kwargs)
    assert steps[str(tmp_path / "cb")] == [3, 4]
    assert (resumed / "svd_lora_config.json").is_file()  # saved with its spec: loads as Panacea's family does
    a, b = _weights(straight, "adapter_model.safetensors"), _weights(resumed, "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any("lora_pref_scale" in k for k in a)
    lams = [_lambdas(folder) for folder in (straight, resumed)]
    assert lams[0] == lams[1] == [DIRICHLET.draw(g, 2).tolist() for g in range(4)]

    with pytest.raises(ValueError, match="preference schedule"):  # a resume under another schedule is refused
        other = PreferenceSchedule(kind="dirichlet", alpha=2.0, seed=5)
        hooks = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer")
        hooks.kill_after(2)
        with pytest.raises(hooks.Killed):
            train_online(tiny_lm_dir, PROMPTS, rewards, DIRICHLET, grpo, train, tmp_path / "c",
                         checkpoint_dir=tmp_path / "cc", **kwargs)
        hooks.clear()
        train_online(tiny_lm_dir, PROMPTS, rewards, other, grpo, train, tmp_path / "c", checkpoint_dir=tmp_path / "cc",
                     **kwargs)


def _lambdas(folder: Path) -> list[list[float]]:
    rows = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    return [[r["preference/chars"], r["preference/count_a"]] for r in rows if "loss" in r]
