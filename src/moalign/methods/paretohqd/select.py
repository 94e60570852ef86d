"""ParetoHqD's data selection: which points are "high quality" and which of them serve each preference.

Pure functions on score arrays (maximised, already normalised). The geometry (non-dominated layers, the ray
from the ideal point through ``nadir + w (ideal - nadir)``, perpendicular distances, the k nearest with a
per-group cap) is ``moalign.pareto``'s; this module only decides what to feed it:

* the Pareto high-quality (HQ) set = the top ``num_layers`` non-dominated layers, or more layers until it
  holds ``min_hq_size`` rows;
* ideal/nadir = per-objective max/min over all rows ("data") or over the HQ set ("hq"), or given;
* duplicate prompts: at most ``max_per_prompt`` responses of one prompt per preference (default 1: the
  nearest one wins, ties by row index), so one preference's data never holds two answers to one question;
* representatives for stage 2: one grid point per single-objective extreme and the most balanced one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IDEAL_NADIR_RULES = ("data", "hq")


@dataclass
class Selection:
    """Per preference (rows of ``grid``), the selected row indices; plus the geometry used."""

    grid: np.ndarray
    indices: list[np.ndarray]
    hq: np.ndarray
    ideal: np.ndarray
    nadir: np.ndarray

    def to_dict(self) -> dict:
        return {
            "grid": self.grid.tolist(),
            "indices": [ix.tolist() for ix in self.indices],
            "hq_size": int(self.hq.shape[0]),
            "ideal": self.ideal.tolist(),
            "nadir": self.nadir.tolist(),
        }


def hq_set(scores: np.ndarray, num_layers: int, min_size: int = 0) -> np.ndarray:
    """Row indices in the top ``num_layers`` non-dominated layers (layer 0 = the non-dominated rows), or in
    more layers when those hold fewer than ``min_size`` rows: the fewest layers that reach ``min_size`` (all
    rows if the data has fewer). Continuous scores give thin layers (a few dozen rows each for 10^6 points in
    2-D), so a fixed layer count alone can leave fewer than ``k`` rows for every preference."""
    from moalign.pareto import pareto_layers

    if num_layers < 1:
        raise ValueError(f"ParetoHqD: num_layers={num_layers}; it must be at least 1")
    n = scores.shape[0]
    limit = num_layers
    while True:
        ranks = np.asarray(pareto_layers(scores, max_layers=limit))
        inside = ranks >= 0
        if inside.sum() >= min(min_size, n) or inside.all():
            break
        limit *= 2  # the layer routine peels fronts one at a time: double until enough rows are ranked
    counts = np.bincount(ranks[inside], minlength=limit)
    enough = np.flatnonzero(np.cumsum(counts) >= min(min_size, n))
    layers = max(num_layers, int(enough[0]) + 1 if enough.size else limit)
    return np.flatnonzero(inside & (ranks < layers))


def ideal_nadir(
    scores: np.ndarray,
    hq: np.ndarray,
    rule: str = "data",
    ideal: Sequence[float] | None = None,
    nadir: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir): per-objective max/min over all rows or over the HQ rows; explicit values win.

    An objective that is constant over the pool (possible for generated data in stage 2) gets
    ``nadir = ideal - 1`` so that every preference still defines a ray; explicit values must be ordered.
    """
    if rule not in IDEAL_NADIR_RULES:
        raise ValueError(f"ParetoHqD: ideal_nadir={rule!r}; choose one of {', '.join(IDEAL_NADIR_RULES)}")
    pool = scores if rule == "data" else scores[hq]
    k = scores.shape[1]
    out = []
    for given, fallback, name in ((ideal, pool.max(axis=0), "ideal"), (nadir, pool.min(axis=0), "nadir")):
        value = fallback if given is None else np.asarray(given, dtype=np.float64)
        if value.shape != (k,):
            raise ValueError(f"ParetoHqD: {name}={list(value)} must have one value per objective ({k})")
        out.append(value)
    top, bottom = out
    if (ideal is not None or nadir is not None) and np.any(top <= bottom):
        raise ValueError(f"ParetoHqD: ideal {top.tolist()} must exceed nadir {bottom.tolist()} on every objective")
    flat = top <= bottom
    if np.any(flat):
        warnings.warn(f"ParetoHqD: objective(s) {np.flatnonzero(flat).tolist()} are constant over the selection "
                      "pool; their nadir is set to ideal - 1", stacklevel=2)
        bottom = np.where(flat, top - 1.0, bottom)
    return top, bottom


def select_for_grid(
    scores: np.ndarray,
    grid: np.ndarray,
    *,
    k: int,
    num_layers: int,
    groups: np.ndarray | None = None,
    max_per_prompt: int = 1,
    rule: str = "data",
    ideal: Sequence[float] | None = None,
    nadir: Sequence[float] | None = None,
    min_hq_size: int = 0,
) -> Selection:
    """For each preference in ``grid``, the (up to) ``k`` HQ rows nearest its ray."""
    from moalign.pareto import select_nearest_to_direction

    scores = np.asarray(scores, dtype=np.float64)
    hq = hq_set(scores, num_layers, min_hq_size)
    top, bottom = ideal_nadir(scores, hq, rule, ideal, nadir)
    cap = max_per_prompt if (max_per_prompt and groups is not None) else None
    indices = [
        np.asarray(
            select_nearest_to_direction(scores, w, top, bottom, k, candidates=hq, groups=groups, max_per_group=cap),
            dtype=np.int64,
        )
        for w in np.asarray(grid, dtype=np.float64)
    ]
    return Selection(np.asarray(grid, dtype=np.float64), indices, hq, top, bottom)


def representatives(grid: np.ndarray) -> list[int]:
    """Grid rows of the M+1 representative preferences: for each objective the row with the largest weight
    on it (the first on a tie), then the row nearest the uniform weight (ties: first). Duplicates dropped."""
    grid = np.asarray(grid, dtype=np.float64)
    m = grid.shape[1]
    picks = [int(np.argmax(grid[:, i])) for i in range(m)]
    picks.append(int(np.argmin(np.linalg.norm(grid - 1.0 / m, axis=1))))
    return list(dict.fromkeys(picks))
