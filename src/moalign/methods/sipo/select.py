"""SIPO's Pareto filter and its new pairs (official ``select_sample.py``, re-read for next-methods.md 2).

For one conflicting pair (x, y_chosen, y_rejected) and candidates y_1..y_C written by the model, every reward
model r (the experts' and the soups' implicit rewards, or explicit reward models) scores all of them. A
candidate survives only if, under **every** r, it scores strictly above both the original chosen and the
original rejected response; of the survivors the one with the largest summed score is kept (the first in
candidate order on a tie). The survivor then becomes the chosen response against each original response,
for every objective.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moalign.data.schema import PairSet


def pareto_survivor(candidates: np.ndarray, chosen: np.ndarray, rejected: np.ndarray) -> int | None:
    """Index of the kept candidate, or None when none beats both originals under every reward model.

    ``candidates`` is (C, R): candidate c's score under reward model r; ``chosen`` and ``rejected`` are (R,).

    >>> pareto_survivor(np.array([[3.0, 1.0], [2.0, 2.0], [5.0, 1.5]]), np.array([1.0, 1.0]), np.array([0.0, 1.2]))
    2
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    chosen, rejected = np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)
    if candidates.ndim != 2 or chosen.shape != (candidates.shape[1],) or rejected.shape != chosen.shape:
        raise ValueError(f"scores: candidates {candidates.shape} must be (C, R) with chosen and rejected (R,); got "
                         f"{chosen.shape} and {rejected.shape}")
    if not (np.isfinite(candidates).all() and np.isfinite(chosen).all() and np.isfinite(rejected).all()):
        raise ValueError("scores: every score must be finite (a NaN would silently fail every comparison)")
    beats = (candidates > chosen).all(axis=1) & (candidates > rejected).all(axis=1)
    if not beats.any():
        return None
    totals = np.where(beats, candidates.sum(axis=1), -np.inf)
    return int(np.argmax(totals))  # the first of equal totals


def survivor_pairs(prompt: str, survivor: str, chosen: str, rejected: str, objectives: Sequence[str],
                   pair_id: str = "0") -> PairSet:
    """The new pairs of one conflicting pair: the survivor chosen over each original response, per objective
    (2 K pairs; ids ``<objective>:<pair_id>:over-chosen`` / ``over-rejected``)."""
    rows = [(name, original, tag) for name in objectives for original, tag in ((chosen, "over-chosen"),
                                                                             (rejected, "over-rejected"))]
    return PairSet(prompts=[prompt] * len(rows), chosen=[survivor] * len(rows), rejected=[r for _, r, _ in rows],
                   objective=[name for name, _, _ in rows], ids=[f"{name}:{pair_id}:{tag}" for name, _, tag in rows])
