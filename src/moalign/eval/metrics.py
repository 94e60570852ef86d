"""Front metrics of one evaluated family: each value comes with the parameters that define it.

Input: one point per preference (the mean score per objective, raw reward units, maximised) and the grid.
Output: ``{metric: {"value": ..., <parameters>}}``, written to ``metrics.json`` as is, so a number is never
separated from its reference point, normalisation or definition (spec section 10: "always record the
reference point and the normalisation with the result").

Reference point of the hypervolume (the first rule that applies):

1. ``eval.hv_reference`` (raw units), when given;
2. with train statistics: ``train mean + hv_reference_z * train std`` per objective (default -3 std), a point
   fixed by the task and the rewards only, so hypervolumes of different methods on one task are comparable;
3. otherwise the per-objective minimum of the evaluated points minus 10% of their range (minus 0.1 where
   the range is 0), recorded as "not comparable across runs".

Degenerate points [ours]: a preference whose responses mostly collapsed (empty, extremely short, repetitive;
``moalign.eval.collapse``) says nothing about the trade-off, yet a cluster of such points can still give a
good-looking hypervolume. ``front_metrics(..., degenerate=mask)`` computes every front indicator over the
other points only (unless ``include_degenerate``); when no point is left, every indicator's value is None
(undefined), never a number. The reference point of rule 3 is then undefined too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INNER_PRODUCT_DEFINITION = (
    "mean over points of <w, f~(w)>, f~ = the point min-max normalised per objective over this run's points "
    "(0.5 where an objective's range is 0)"
)


class DegenerateResultWarning(UserWarning):
    """Every point of an evaluation is degenerate: its front indicators are undefined (see the module docstring)."""


DEGENERATE_RULE = "collapse rate (moalign.eval.collapse.is_collapsed) >= eval.degenerate_threshold"


def degenerate_points(collapse_rates: Sequence[float], threshold: float) -> np.ndarray:
    """Mask of the degenerate points: those whose share of collapsed responses is at least ``threshold``.

    >>> degenerate_points([0.0, 0.5, 1.0], 0.5).tolist()
    [False, True, True]
    """
    return np.asarray(collapse_rates, dtype=float) >= threshold


def all_degenerate_warning(n_points: int, threshold: float, reason: str | None = None) -> str:
    """The paragraph shown (warning, metrics, report) when every point is degenerate: what it means, likely causes."""
    mostly = f", mostly {reason!r}" if reason else ""
    return (f"Every preference point is degenerate ({n_points} of {n_points} have a collapse rate >= {threshold:g}"
            f"{mostly}): the responses are empty, extremely short or repetitive, so the front indicators say nothing "
            "about the trade-off. Likely causes: the prompts are not in the format the model was trained on (raw "
            "prompts without the prompt template or chat template); eval.generation.max_new_tokens is too small; a "
            "stop string (eval.generation.stop_strings) matches at the start of the response; the model emits its "
            "end-of-sequence token first; or the training run diverged (learning rate too high). Read a few "
            "responses in eval/score/<w>/rows.jsonl (or click a point in the report) to tell which.")


def default_reference(points: np.ndarray, zscore=None, hv_reference=None, hv_reference_z: float = -3.0):
    """The raw-space hypervolume reference point and the rule that chose it (see the module docstring)."""
    points = np.asarray(points, dtype=float)
    k = points.shape[1]
    if hv_reference is not None:
        ref = np.asarray(hv_reference, dtype=float).reshape(-1)
        if ref.shape[0] != k:
            raise ValueError(f"eval.hv_reference has {ref.shape[0]} values but the run has {k} objectives")
        return ref, "given (eval.hv_reference)"
    if zscore is not None:
        return zscore.mean + hv_reference_z * zscore.std, f"train mean {hv_reference_z:+g} x train std"
    lo, span = points.min(axis=0), np.ptp(points, axis=0)
    return lo - 0.1 * np.where(span > 0, span, 1.0), "min of evaluated points - 10% of range (not comparable across runs)"


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when either side is constant (undefined)."""
    rx, ry = _average_ranks(np.asarray(x, dtype=float)), _average_ranks(np.asarray(y, dtype=float))
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    _, inverse = np.unique(values, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def controllability(ws: np.ndarray, points: np.ndarray, objectives: Sequence[str]) -> dict:
    """Per objective i: Spearman correlation between w_i and the mean score on i across the grid.

    +1 means raising the weight on an objective always raises its score (Panacea's "does the preference
    control the model"); None means undefined (the weight or the score never changes).
    """
    return {name: spearman(ws[:, i], points[:, i]) for i, name in enumerate(objectives)}


def inner_product(ws: np.ndarray, points: np.ndarray) -> float:
    """Panacea-style alignment of each point with its preference (see ``INNER_PRODUCT_DEFINITION``)."""
    lo, span = points.min(axis=0), np.ptp(points, axis=0)
    scaled = np.where(span > 0, (points - lo) / np.where(span > 0, span, 1.0), 0.5)
    return float(np.mean(np.sum(ws * scaled, axis=1)))


def front_metrics(
    ws: np.ndarray,
    points: np.ndarray,
    objectives: Sequence[str],
    zscore=None,
    hv_reference=None,
    hv_reference_z: float = -3.0,
    reference_front: np.ndarray | None = None,
    reference_front_source: str | None = None,
    *,
    degenerate: Sequence[bool] | None = None,
    include_degenerate: bool = False,
) -> dict:
    """Every front metric of one family (raw units in, ``{name: {"value": ..., params...}}`` out).

    ``degenerate`` flags points left out of every indicator (see the module docstring); ``n_points.value``
    still counts every point, ``n_points.nondominated`` only those the indicators used.
    """
    from moalign.pareto import is_nondominated

    ws, points = np.asarray(ws, dtype=float), np.asarray(points, dtype=float)
    flags = np.zeros(len(points), dtype=bool) if degenerate is None else np.asarray(degenerate, dtype=bool)
    if flags.shape != (len(points),):
        raise ValueError(f"degenerate has {flags.size} flags but there are {len(points)} points")
    used = np.ones_like(flags) if include_degenerate else ~flags
    over = _points_note(flags, include_degenerate)
    setting = (objectives, zscore, hv_reference, hv_reference_z, reference_front, reference_front_source)
    out = _indicators(ws[used], points[used], *setting, over) if used.any() else _undefined_indicators(*setting)
    nondominated = int(np.sum(is_nondominated(points[used]))) if used.any() else None
    out["n_points"] = {"value": len(points), "nondominated": nondominated}
    out["degenerate"] = {"value": int(flags.sum()), "points": np.flatnonzero(flags).tolist(),
                         "excluded": np.flatnonzero(~used).tolist(), "included": bool(include_degenerate),
                         "indicators_over": over}
    return out


def _points_note(flags: np.ndarray, include_degenerate: bool) -> str:
    """Which points the indicators were computed over, in words (recorded with every indicator)."""
    if not flags.any():
        return "all evaluated points"
    if include_degenerate:
        return f"all evaluated points, {int(flags.sum())} degenerate included (eval.include_degenerate=true)"
    return f"the {int((~flags).sum())} non-degenerate points of {len(flags)} ({int(flags.sum())} degenerate excluded)"


def _indicators(ws, points, objectives, zscore, hv_reference, hv_reference_z, reference_front, front_source,
                over: str) -> dict:
    """The front indicators of the points they are given (at least one)."""
    from moalign.pareto import hypervolume, igd, spacing, sparsity

    ref, rule = default_reference(points, zscore, hv_reference, hv_reference_z)
    out: dict = {"hypervolume": {"value": hypervolume(points, ref), "space": "raw", "reference": ref,
                                 "reference_rule": rule, "points": over}}
    spread_points, spread_space = points, "raw"
    if zscore is not None:
        z_points, z_ref = zscore.transform(points), zscore.transform(ref)
        out["hypervolume_z"] = {
            "value": hypervolume(z_points, z_ref), "space": "train z-score", "reference": z_ref,
            "reference_rule": rule, "train_mean": zscore.mean, "train_std": zscore.std, "train_n": zscore.n,
            "points": over,
        }
        spread_points, spread_space = z_points, "train z-score"
    if reference_front is not None:
        out["igd"] = {"value": igd(points, np.asarray(reference_front, dtype=float)), "space": "raw",
                      "reference_front": front_source or "given", "points": over}
    out["spacing"] = {"value": spacing(spread_points), "space": spread_space, "points": over}
    out["sparsity"] = {"value": sparsity(spread_points), "space": spread_space, "points": over}
    out["controllability"] = {"value": controllability(ws, points, objectives), "points": over,
                              "definition": "Spearman correlation of w_i with the mean score on objective i over the grid"}
    out["inner_product"] = {"value": inner_product(ws, points), "definition": INNER_PRODUCT_DEFINITION, "points": over}
    return out


def _undefined_indicators(objectives, zscore, hv_reference, hv_reference_z, reference_front, front_source) -> dict:
    """Every indicator with value None (no point left to measure); the reference point when a rule fixes it
    without the points (rules 1 and 2), else None."""
    why = "undefined: every point is degenerate (eval.include_degenerate=false)"
    ref, rule = (None, why)
    if hv_reference is not None or zscore is not None:
        ref, rule = default_reference(np.zeros((1, len(objectives))), zscore, hv_reference, hv_reference_z)
    space = "raw" if zscore is None else "train z-score"
    out: dict = {"hypervolume": {"value": None, "space": "raw", "reference": ref, "reference_rule": rule,
                                 "points": why}}
    if zscore is not None:
        out["hypervolume_z"] = {"value": None, "space": "train z-score", "reference": zscore.transform(ref),
                                "reference_rule": rule, "train_mean": zscore.mean, "train_std": zscore.std,
                                "train_n": zscore.n, "points": why}
    if reference_front is not None:
        out["igd"] = {"value": None, "space": "raw", "reference_front": front_source or "given", "points": why}
    out["spacing"] = {"value": None, "space": space, "points": why}
    out["sparsity"] = {"value": None, "space": space, "points": why}
    out["controllability"] = {"value": {name: None for name in objectives}, "points": why,
                              "definition": "Spearman correlation of w_i with the mean score on objective i over the grid"}
    out["inner_product"] = {"value": None, "definition": INNER_PRODUCT_DEFINITION, "points": why}
    return out


def load_reference_front(path: str) -> np.ndarray:
    """Raw-space points from a JSON file (a list of lists, or ``{"points": ...}``) or a CSV file (no header)."""
    import json
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        data = json.loads(text)
        points = np.asarray(data["points"] if isinstance(data, dict) else data, dtype=float)
    else:
        points = np.loadtxt(path, delimiter=",", ndmin=2)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"eval.reference_front={path!r}: expected a non-empty list of points, got shape {points.shape}")
    return points
