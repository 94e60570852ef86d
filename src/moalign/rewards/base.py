"""The reward protocol: a reward scores (prompt, response) pairs, higher is better."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class RewardFunction(Protocol):
    """Anything with a ``name`` that maps prompts and responses to an (n,) float array (maximised)."""

    name: str

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


def score_matrix(
    rewards: Sequence[RewardFunction], prompts: Sequence[str], responses: Sequence[str], progress: bool = False
) -> np.ndarray:
    """Score every response with every reward: an (n, k) float64 array, columns in ``rewards`` order."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    columns = []
    iterator = rewards
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(rewards, desc="scoring", unit="reward")
    for reward in iterator:
        values = np.asarray(reward(list(prompts), list(responses)), dtype=np.float64).reshape(-1)
        if values.shape[0] != len(prompts):
            raise ValueError(f"reward {reward.name!r} returned {values.shape[0]} scores for {len(prompts)} responses")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"reward {reward.name!r} returned NaN or inf scores")
        columns.append(values)
    return np.stack(columns, axis=1) if columns else np.zeros((len(prompts), 0))


def score_matrix_on_ranks(
    rewards: Sequence[RewardFunction], prompts: Sequence[str], responses: Sequence[str], progress: bool = False
) -> np.ndarray | None:
    """:func:`score_matrix` with the rows dealt out over the ranks of a launch (every rank must call it with the
    same rows): each rank scores its blocks, whole batches of every reward model, so every batch holds the rows
    it holds in one process and the scores are the same; the main rank gets them all in order, the others
    None. In one process: the scores."""
    import math

    from moalign import distributed

    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    block = math.lcm(*(int(getattr(getattr(r, "spec", None), "batch_size", 1) or 1) for r in rewards), 1)
    block *= max(1, 32 // block)

    def rows(indices: list[int]) -> list:
        return list(score_matrix(rewards, [prompts[i] for i in indices], [responses[i] for i in indices],
                                 progress=progress))

    gathered = distributed.map_blocks(len(prompts), block, rows)
    if gathered is None:
        return None
    return np.asarray(gathered, dtype=np.float64).reshape(len(prompts), len(rewards))
