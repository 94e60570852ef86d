"""MORLHF: online RL on the linearly scalarised reward w . r with a KL penalty, one model per preference w.

For each w of the training grid a policy maximises  E[w . r(x, y)] - beta * KL(pi || pi_start)  on the task's
train prompts (spec section 7; RiC's ``ppo/morlhf.py``). TRL 1.16 removed PPO, so the optimiser is GRPO
(:mod:`moalign.train.online`): the advantage of a completion is its scalarised reward relative to the other
completions of the same prompt, instead of PPO's learned critic. A one-hot w trains a single-objective RL
expert: Rewarded Soups' experts are this method on the one-hot grid.

``reward_scale``: ``raw`` scores each objective in its reward's own units (RiC's MORLHF), ``zscore`` divides by
the train-set statistics the evaluation uses (stage ``eval/stats``), so w weighs objectives in the same units
as the reported front. See docs/methods/morlhf.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from moalign.config import ConfigError, RunConfig, TrainSettings, check_choice, check_range
from moalign.eval.family import CheckpointFamily
from moalign.eval.grid import PreferenceGrid, training_grid
from moalign.methods.preference_data import per_preference_stages
from moalign.methods.registry import MethodSpec
from moalign.pipeline import Run
from moalign.rewards.lazy import LazyRewards
from moalign.train.online import GRPOSettings

REWARD_SCALES = ("raw", "zscore")


@dataclass
class MORLHFConfig:
    """MORLHF: one GRPO-trained model per preference in ``preferences`` (a grid spec; None = the evaluation grid)."""

    preferences: str | None = None
    max_prompts: int | None = 512  # distinct train prompts, a seeded sample when there are more; None: all
    reward_scale: str = "raw"  # raw (RiC's MORLHF) | zscore (train z-units, as the evaluation reports them)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    train: TrainSettings = field(default_factory=lambda: TrainSettings(learning_rate=1e-5))

    def __post_init__(self) -> None:
        check_choice("method.reward_scale", self.reward_scale, REWARD_SCALES)
        if self.max_prompts is not None:
            check_range("method.max_prompts", self.max_prompts, low=1, integer=True, fix="or null for every prompt")


def train_prompts(config: RunConfig) -> list[str]:
    """The task's distinct train prompts, at most ``method.max_prompts`` of them (seeded, in first-seen order)."""
    from moalign.data.prompts import distinct_prompts
    from moalign.data.task import load_task

    pool = distinct_prompts(load_task(config.task, seed=config.seed).responses.prompts)
    if not pool:
        raise ValueError("MORLHF trains on the task's train prompts, and the task has none (check task.train_data)")
    cap = config.method.max_prompts
    if cap is None or cap >= len(pool):
        return pool
    import numpy as np

    keep = np.sort(np.random.default_rng(config.seed).choice(len(pool), size=cap, replace=False))
    return [pool[i] for i in keep]


def reward_zscore(config: RunConfig, run: Run, rewards: LazyRewards):
    """The evaluation's train-set statistics (stage ``eval/stats``, shared with the evaluation), or None (raw)."""
    if config.method.reward_scale == "raw":
        return None, []
    from moalign.eval.inputs import load_zscore, stats_stage

    stage = stats_stage(run, config, rewards, rewards.identity)
    if stage is None:
        raise ConfigError("method.reward_scale=zscore uses the evaluation's train statistics, but "
                          "eval.normalization='none'; set eval.normalization=auto or method.reward_scale=raw")
    return (lambda: load_zscore(run, stage)), [stage]


def train_morlhf(config: RunConfig, run: Run) -> CheckpointFamily:
    """One GRPO stage ``train/<tag>`` per preference of the training grid; returns the per-w family."""
    return train_morlhf_models(config, run, training_grid(config, config.method.preferences))


def train_morlhf_models(config: RunConfig, run: Run, grid: PreferenceGrid) -> CheckpointFamily:
    """One GRPO model per preference of ``grid`` (Rewarded Soups: the one-hot preferences, whatever the
    evaluation grid is); the stages are MORLHF's own."""
    from moalign.eval.generate import cut_at_stop_strings
    from moalign.train.online import train_online

    method, objectives = config.method, list(config.task.objectives)
    rewards = LazyRewards.for_task(config.task)
    stats, depends = reward_zscore(config, run, rewards)
    stops = list(config.eval.generation.stop_strings)
    prompts: list[str] = []  # read once, by the first stage that trains

    def train_one(w):
        def train(ckpt_dir: Path, out_dir: Path) -> None:
            if not prompts:
                prompts.extend(train_prompts(config))
            train_online(config.model.name_or_path, prompts, rewards(), w, method.grpo, method.train, out_dir,
                         seed=config.seed, checkpoint_dir=ckpt_dir, objectives=objectives,
                         zscore=stats() if stats else None, model_config=config.model,
                         clean=partial(cut_at_stop_strings, stop_strings=stops))

        return train

    def inputs(w):
        return {"model": config.model, "task": config.task, "rewards": rewards.identity, "w": [float(x) for x in w],
                "grpo": method.grpo, "train": method.train, "max_prompts": method.max_prompts,
                "reward_scale": method.reward_scale, "stop_strings": stops, "seed": config.seed}

    return CheckpointFamily("morlhf", per_preference_stages(run, grid, train_one, inputs, depends_on=depends))


METHOD = MethodSpec("morlhf", MORLHFConfig, train_morlhf,
                    "online RL (TRL GRPO) on w . r with a KL penalty, one model per preference")
