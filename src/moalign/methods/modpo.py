"""MODPO: multi-objective DPO with margin rewards (Zhou et al., ACL Findings 2024; spec section 6).

Trained on the pairs of one objective k (``main_objective``), steered by margin rewards r_j of the others:

    L = -log sigmoid( (1/w_k) * [ beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)))
                                  - sum_{j != k} w_j (r_j(x, y_w) - r_j(x, y_l)) ] )

Margin rewards come either from the pairs' reward scores (``margin="scores"``: explicit reward models,
z-normalised per objective by default) or from a DPO model trained on objective j's pairs
(``margin="dpo"``: its implicit reward beta * (log pi_j - log ref), with the same beta and reference as the
policy, as the MODPO recipe requires). Either way the margins are frozen, so they are computed once and
travel with the dataset; a step costs what a DPO step costs. One model per preference; w_k > 0 is required.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moalign import distributed
from moalign.config import ConfigError, RunConfig, TrainSettings
from moalign.eval.family import CheckpointFamily
from moalign.eval.grid import training_grid
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
from moalign.methods.stages import training_stage
from moalign.pipeline import Run
from moalign.train.losses import PairLogps, dpo_pair_loss
from moalign.train.reference import implicit_reward_margins
from moalign.train.weighting import FixedWeights

MARGINS = ("dpo", "scores")
MARGIN_FILE = "margins.npy"


def check_main_weight(w, main: int) -> torch.Tensor:
    """w as float64 with w[main] > 0 enforced (MODPO divides by it)."""
    w = torch.as_tensor(np.asarray(w, dtype=np.float64))
    if not 0 <= main < len(w):
        raise ValueError(f"main objective index {main} is outside a preference of length {len(w)}")
    if not float(w[main]) > 0:
        raise ValueError(
            f"MODPO preference w={w.tolist()} puts weight {float(w[main])} on the trained objective (index {main}); "
            "MODPO divides by it, so it must be > 0 (use DPO on the margin objective for that end point)"
        )
    return w


def modpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    margins: torch.Tensor,
    w,
    beta: float,
    main: int = 0,
) -> torch.Tensor:
    """Per-pair MODPO loss, shape (B,).

    ``margins`` (B, K): r_j(x, y_w) - r_j(x, y_l) for every objective j in the run's order (column ``main`` is
    ignored); ``w`` (K,) is the preference in the same order; ``main`` indexes the trained objective.
    """
    if beta <= 0:
        raise ValueError(f"beta={beta}: the DPO temperature must be > 0")
    w = check_main_weight(w, main).to(policy_chosen.dtype).to(policy_chosen.device)
    others = w.clone()
    others[main] = 0.0
    margin = (margins.to(policy_chosen.dtype) * others).sum(dim=-1)
    gap = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid((beta * gap - margin) / w[main])


def modpo_pair_loss(w, beta: float, main: int = 0):
    """``modpo_loss`` as the trainer's ``loss_fn(logps, k, w)``; margins come from the ``margins`` column.

    MODPO's preference ``w`` covers every objective of the run, while its trainer sees only the main
    objective's pairs; so it is fixed here, and the trainer's (one-objective) preference is ignored.
    """
    check_main_weight(w, main)

    def loss_fn(logps: PairLogps, k: int, trainer_w=None) -> torch.Tensor:
        return modpo_loss(logps.policy_chosen, logps.policy_rejected, logps.ref_chosen, logps.ref_rejected,
                          logps.columns["margins"], w, beta, main)

    return loss_fn


def score_margins(pairs, main: int, normalize: bool = True, objectives=None) -> np.ndarray:
    """(n, K) margins from the pairs' reward scores; z-normalised per objective over both sides.

    ``objectives`` (the run's order) reorders the score columns when the pairs list them differently.
    """
    if pairs.chosen_scores is None or pairs.rejected_scores is None:
        raise ValueError("method.margin='scores' needs reward scores on the pairs; the task's pairs have none "
                         "(use margin='dpo', or pairs built from scored responses)")
    chosen, rejected = np.asarray(pairs.chosen_scores, float), np.asarray(pairs.rejected_scores, float)
    if objectives is not None and list(objectives) != list(pairs.objectives):
        missing = [o for o in objectives if o not in pairs.objectives]
        if missing:
            raise ValueError(f"method.margin='scores': the pairs carry no scores for {missing}")
        order = [list(pairs.objectives).index(o) for o in objectives]
        chosen, rejected = chosen[:, order], rejected[:, order]
    if np.isnan(np.delete(chosen, main, axis=1)).any() or np.isnan(np.delete(rejected, main, axis=1)).any():
        raise ValueError("method.margin='scores': some pairs lack a score on a margin objective")
    if normalize:
        std = np.concatenate([chosen, rejected]).std(axis=0)
        chosen, rejected = chosen / np.where(std > 0, std, 1.0), rejected / np.where(std > 0, std, 1.0)
    margins = chosen - rejected
    margins[:, main] = 0.0
    return margins


@dataclass
class MODPOConfig:
    """MODPO: ``main_objective``'s pairs (None = the first objective), margins from the others."""

    beta: float = 0.1
    main_objective: str | None = None
    preferences: str | None = None  # grid spec; None = the evaluation grid (every w needs w[main] > 0)
    margin: str = "dpo"  # dpo | scores
    margin_normalize: bool = True  # scores: divide each objective's scores by their std (z-scale; mean cancels)
    reference: str = "precomputed"
    pairs: PairSettings = field(default_factory=PairSettings)
    margin_train: TrainSettings = field(default_factory=TrainSettings)  # for the margin DPO models
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        check_dpo_settings(self.beta, self.reference)
        if self.margin not in MARGINS:
            raise ConfigError(f"method.margin={self.margin!r}: choose one of {', '.join(MARGINS)} (dpo: margin "
                              "rewards from DPO models; scores: from the pairs' reward scores)")


def _main_index(config: RunConfig) -> int:
    objectives = list(config.task.objectives)
    name = config.method.main_objective or objectives[0]
    if name not in objectives:
        raise ValueError(f"method.main_objective={name!r} is not one of task.objectives={objectives}")
    return objectives.index(name)


def _margin_model_stage(config: RunConfig, run: Run, pairs_dir: Path, name: str) -> Path:
    """Stage ``margin/<name>``: a DPO model on objective ``name``'s pairs (the implicit margin reward)."""
    from moalign.train.preference_run import train_preference

    method, objectives = config.method, list(config.task.objectives)
    ref_stage = cached_reference(config, run, method.reference, method.margin_train.max_length)

    def train(ckpt_dir, out_dir):
        train_preference(config.model, load_pairsets(pairs_dir, [name]), save_dir=out_dir, checkpoint_dir=ckpt_dir,
                         loss_fn=dpo_pair_loss(method.beta), weighting=FixedWeights([1.0]),
                         settings=method.margin_train, seed=config.seed, reference=method.reference,
                         columns=reference_columns(run, ref_stage, objectives))

    inputs = {"model": config.model, "beta": method.beta, "train": method.margin_train, "objective": name,
              "reference": method.reference, "seed": config.seed}
    return training_stage(run, f"margin/{name}", inputs, train, ["pairs"] + ([ref_stage] if ref_stage else []))


def _margins_stage(config: RunConfig, run: Run, pairs_dir: Path, main: int) -> Path:
    """Stage ``margins``: (n_main, K) margin rewards of the trained objective's pairs (under a launch, every rank
    computes the DPO margins of its share of the pairs; the main rank writes them)."""
    method, objectives = config.method, list(config.task.objectives)
    models = {}
    if method.margin == "dpo":
        models = {o: str(_margin_model_stage(config, run, pairs_dir, o)) for i, o in enumerate(objectives) if i != main}

    def compute(out: Path) -> None:
        pairs = load_pairsets(pairs_dir, objectives)[objectives[main]]
        if method.margin == "scores":
            margins = score_margins(pairs, main, method.margin_normalize, objectives)
        else:
            margins = np.zeros((len(pairs), len(objectives)))
            for o, folder in models.items():
                column = implicit_reward_margins(folder, config.model, pairs, beta=method.beta,
                                                 max_length=method.train.max_length, sharded=True)
                if column is not None:  # None on the other ranks of a launch: they computed their share
                    margins[:, objectives.index(o)] = column
        if distributed.is_main():
            np.save(out / MARGIN_FILE, margins)

    inputs = {"margin": method.margin, "normalize": method.margin_normalize, "beta": method.beta,
              "max_length": method.train.max_length, "models": models, "main": main}
    depends = ["pairs"] + [f"margin/{o}" for o in models]
    return run.stage("margins", inputs, compute, depends_on=depends, ranks="all")


def train_modpo(config: RunConfig, run: Run) -> CheckpointFamily:
    """Stages: pairs -> margin/<objective> (margin='dpo') -> margins -> train/<tag> (one model per w)."""
    from moalign.train.preference_run import train_preference

    method, objectives = config.method, list(config.task.objectives)
    main = _main_index(config)
    grid = training_grid(config, method.preferences)
    for w in grid.points:
        check_main_weight(w, main)  # fail before any training
    pairs_dir = pairs_stage(config, run, method.pairs)
    margins_dir = _margins_stage(config, run, pairs_dir, main)
    ref_stage = cached_reference(config, run, method.reference, method.train.max_length)
    name = objectives[main]

    def train_one(w):
        def train(ckpt_dir, out_dir):
            columns = reference_columns(run, ref_stage, objectives)
            columns = {name: {**columns.get(name, {}), "margins": np.load(margins_dir / MARGIN_FILE)}}
            train_preference(config.model, load_pairsets(pairs_dir, [name]), save_dir=out_dir,
                             checkpoint_dir=ckpt_dir, loss_fn=modpo_pair_loss(w, method.beta, main),
                             weighting=FixedWeights([1.0]), settings=method.train, seed=config.seed,
                             reference=method.reference, columns=columns)

        return train

    def inputs(w):
        return {"model": config.model, "beta": method.beta, "reference": method.reference, "train": method.train,
                "w": [float(x) for x in w], "main": main, "seed": config.seed}

    depends = ["pairs", "margins"] + ([ref_stage] if ref_stage else [])
    return CheckpointFamily("modpo", per_preference_stages(run, grid, train_one, inputs, depends_on=depends))


METHOD = MethodSpec("modpo", MODPOConfig, train_modpo, "multi-objective DPO with margin rewards (one model per w)")
