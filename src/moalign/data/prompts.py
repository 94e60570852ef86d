"""Small prompt-set helpers shared by methods that generate from, or group by, the prompts of a data set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def distinct_prompts(prompts: Sequence[str]) -> list[str]:
    """Each prompt once, in first-seen order.

    >>> distinct_prompts(["a", "b", "a"])
    ['a', 'b']
    """
    return list(dict.fromkeys(prompts))


def prompt_groups(prompts: Sequence[str]) -> np.ndarray:
    """An integer id per row, equal for identical prompt texts (for one-response-per-prompt rules).

    >>> prompt_groups(["a", "b", "a"]).tolist()
    [0, 1, 0]
    """
    ids: dict[str, int] = {}
    return np.asarray([ids.setdefault(p, len(ids)) for p in prompts], dtype=np.int64)


def sample_prompts(prompts: Sequence[str], n: int, seed: int, replace: bool | None = None) -> list[str]:
    """``n`` prompts drawn from the distinct ``prompts`` with a seeded generator; without replacement when
    there are enough of them (``replace=None``), else with."""
    pool = distinct_prompts(prompts)
    if not pool:
        raise ValueError("no prompts to sample from: the train data is empty")
    if replace is None:
        replace = n > len(pool)
    idx = np.random.default_rng(seed).choice(len(pool), size=n, replace=replace)
    return [pool[i] for i in idx]
