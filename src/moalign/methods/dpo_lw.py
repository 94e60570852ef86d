"""DPO (one objective) and DPO-LW (linear loss weighting over objectives, one model per preference w).

DPO-LW minimises  L(w) = sum_k w_k * L_DPO(D_k)  where D_k are objective k's preference pairs (spec section
9; SIPO's baseline). Each step takes one sub-batch per objective; objectives with w_k = 0 are skipped, so a
one-hot w is exactly DPO on that objective. ``dpo`` trains one such model per objective (w = e_k).

Difference from SIPO's code: SIPO scores the *same* pair under both objectives (flipping it where they
disagree); here each objective draws from its own pair set. Pairs built from scored responses contain the
same comparisons in both orientations, so the two agree in expectation; with task-provided pair sets (e.g.
PKU-SafeRLHF better/safer on identical comparisons) they coincide up to the batching.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moalign.config import ConfigError, RunConfig, TrainSettings
from moalign.eval.family import CheckpointFamily
from moalign.eval.grid import PreferenceGrid, training_grid
from moalign.methods.preference_data import (
    PairSettings,
    cached_reference,
    check_dpo_settings,
    load_pairsets,
    pairs_stage,
    per_preference_stages,
    reference_columns,
)
from moalign.methods.registry import MethodSpec
from moalign.pipeline import Run
from moalign.train.losses import dpo_pair_loss
from moalign.train.weighting import FixedWeights


@dataclass
class DPOLWConfig:
    """DPO-LW: one model per preference in ``preferences`` (a grid spec; None = the evaluation grid)."""

    beta: float = 0.1
    preferences: str | None = None
    reference: str = "precomputed"  # precomputed | model | adapter (LoRA only); all give the same loss
    pairs: PairSettings = field(default_factory=PairSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        check_dpo_settings(self.beta, self.reference)


@dataclass
class DPOConfig:
    """Single-objective DPO: one model per objective in ``objectives`` (None = every task objective)."""

    beta: float = 0.1
    objectives: list[str] | None = None
    reference: str = "precomputed"
    pairs: PairSettings = field(default_factory=PairSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        check_dpo_settings(self.beta, self.reference)
        if self.objectives is not None and not self.objectives:
            raise ConfigError("method.objectives=[]: name at least one objective, or leave it unset for all")


def train_weighted(config: RunConfig, run: Run, grid: PreferenceGrid, name: str) -> CheckpointFamily:
    """One DPO-LW model per preference of ``grid`` (stage ``train/<tag>``); returns the per-w family.

    Objectives with w_k = 0 are left out of the model's data, so a one-hot w is exactly DPO on one objective.
    """
    from moalign.train.preference_run import train_preference

    method, objectives = config.method, list(config.task.objectives)
    pairs_dir = pairs_stage(config, run, method.pairs)
    ref_stage = cached_reference(config, run, method.reference, method.train.max_length)
    pairsets: dict = {}  # read once, by the first stage that trains

    def train_one(w):
        active = [k for k in range(len(objectives)) if w[k] > 0]

        def train(ckpt_dir, out_dir):
            if not pairsets:
                pairsets.update(load_pairsets(pairs_dir, objectives))
            train_preference(
                config.model, {objectives[k]: pairsets[objectives[k]] for k in active}, save_dir=out_dir,
                checkpoint_dir=ckpt_dir, loss_fn=dpo_pair_loss(method.beta), weighting=FixedWeights(w[active]),
                settings=method.train, seed=config.seed, reference=method.reference,
                columns=reference_columns(run, ref_stage, objectives),
            )

        return train

    def inputs(w):
        return {"model": config.model, "beta": method.beta, "reference": method.reference, "train": method.train,
                "w": [float(x) for x in w], "seed": config.seed}

    depends = ["pairs"] + ([ref_stage] if ref_stage else [])
    return CheckpointFamily(name, per_preference_stages(run, grid, train_one, inputs, depends_on=depends))


def train_dpo_lw(config: RunConfig, run: Run) -> CheckpointFamily:
    return train_weighted(config, run, training_grid(config, config.method.preferences), "dpo_lw")


def train_dpo(config: RunConfig, run: Run) -> CheckpointFamily:
    objectives = list(config.task.objectives)
    chosen = config.method.objectives or objectives
    unknown = [o for o in chosen if o not in objectives]
    if unknown:
        raise ValueError(f"method.objectives: {unknown} not in task.objectives={objectives}")
    one_hot = np.eye(len(objectives))[[objectives.index(o) for o in chosen]]
    return train_weighted(config, run, PreferenceGrid.from_points(one_hot), "dpo")


METHODS = {
    "dpo": MethodSpec("dpo", DPOConfig, train_dpo, "single-objective DPO, one model per objective"),
    "dpo_lw": MethodSpec("dpo_lw", DPOLWConfig, train_dpo_lw, "DPO with linearly weighted per-objective losses"),
}
METHOD = METHODS["dpo_lw"]
