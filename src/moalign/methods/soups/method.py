"""The soups' stages: the ``dpo`` method's own (pairs -> reference cache -> ``train/w=<e_k>``, one expert per
objective); the soup itself is built in memory per preference by the family, so it has no stage."""

from __future__ import annotations

import dataclasses

import numpy as np

from moalign.config import RunConfig
from moalign.eval.family import CheckpointFamily
from moalign.methods.dpo_lw import train_dpo
from moalign.methods.soups.config import SoupsConfig
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
