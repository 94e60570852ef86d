"""The soups' stages: the ``dpo`` method's own for DPO Soups (pairs -> reference cache -> ``train/w=<e_k>``, one
expert per objective), the ``morlhf`` method's own at one-hot preferences for Rewarded Soups; the soup itself
is built in memory per preference by the family, so it has no stage."""

from __future__ import annotations

import dataclasses

import numpy as np

from moalign.config import RunConfig
from moalign.eval.family import CheckpointFamily
from moalign.eval.grid import PreferenceGrid
from moalign.methods.dpo_lw import train_dpo
from moalign.methods.morlhf import train_morlhf_models
from moalign.methods.soups.config import RewardedSoupsConfig, SoupsConfig
from moalign.methods.soups.family import SoupFamily
from moalign.pipeline import Run


def expert_folders(experts: CheckpointFamily, num_objectives: int) -> list[str]:
    """The experts' folders in the objectives' order: the checkpoint of w = e_k for each k."""
    return [experts.checkpoint_for(row) for row in np.eye(num_objectives)]


def train_soups(config: RunConfig, run: Run) -> SoupFamily:
    """Train one DPO expert per objective (``method.experts``, run as ``moalign train dpo`` would) and return
    the soup family over them."""
    method: SoupsConfig = config.method
    method.check_run(config)
    experts = train_dpo(dataclasses.replace(config, method=method.experts), run)
    folders = expert_folders(experts, len(config.task.objectives))
    return SoupFamily(folders, mode=method.mode, name=f"dpo_soups-{method.mode}", base=config.model.name_or_path,
                      dtype=config.model.dtype)


def train_rewarded_soups(config: RunConfig, run: Run) -> SoupFamily:
    """Train one MORLHF expert per objective (GRPO on reward k alone, run as ``moalign train morlhf`` at the
    one-hot preferences would) and return the soup family over them."""
    method: RewardedSoupsConfig = config.method
    k = len(config.task.objectives)
    experts = train_morlhf_models(dataclasses.replace(config, method=method.experts), run,
                                  PreferenceGrid.from_points(np.eye(k)))
    return SoupFamily(expert_folders(experts, k), mode=method.mode, name=f"rewarded_soups-{method.mode}",
                      base=config.model.name_or_path, dtype=config.model.dtype, trained_by="morlhf")
