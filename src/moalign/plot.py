"""Pareto-front plots (matplotlib figures from plain arrays; nothing here reads a run directory).

One colour per method; each point is annotated with its preference; points dominated within their own
method are drawn faded. With k > 2 objectives every pair of objectives gets its own panel (a projection: a
point faded there is dominated in all k objectives, not in the two shown). Degenerate points (mostly collapsed
responses) are drawn as crosses and, unless ``include_degenerate``, left out of the front line and of dominance.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
FADED_ALPHA = 0.25


@dataclass
class FrontSeries:
    """One method's front: ``points[j]`` (mean score per objective) was measured at preference ``ws[j]``."""

    label: str
    ws: np.ndarray
    points: np.ndarray
    se: np.ndarray | None = None
    degenerate: np.ndarray | None = None  # mask of degenerate points (drawn as crosses)
    include_degenerate: bool = False  # True: they still count for the front line and dominance


def preference_label(w) -> str:
    """Compact preference text: ``[0.2, 0.8]`` -> ``"(.2,.8)"``, ``[1, 0]`` -> ``"(1,0)"``."""
    parts = []
    for x in w:
        text = f"{float(x):.2f}".rstrip("0").rstrip(".")
        parts.append(text[1:] if text.startswith("0.") else text)
    return "(" + ",".join(parts) + ")"


def point_labels(ws, points) -> list[str | None]:
    """One annotation per distinct point: coinciding points (e.g. the base model alone) share one label,
    ``"(0,1) (.5,.5)"`` or ``"11 preferences"``; the other members of the group get None."""
    groups: dict[tuple, list[int]] = {}
    for index, point in enumerate(np.asarray(points, dtype=float)):
        groups.setdefault(tuple(np.round(point, 12)), []).append(index)
    labels: list[str | None] = [None] * len(ws)
    for members in groups.values():
        names = [preference_label(ws[m]) for m in members]
        labels[members[0]] = " ".join(names) if len(names) <= 3 else f"{len(names)} preferences"
    return labels


def objective_pairs(k: int) -> list[tuple[int, int]]:
    if k < 2:
        raise ValueError(f"a front plot needs at least 2 objectives, got {k}")
    return list(combinations(range(k), 2))


def plot_fronts(series: list[FrontSeries], objectives: list[str], title: str | None = None, annotate: bool = True):
    """A figure with one panel per pair of objectives and one colour per series."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pairs = objective_pairs(len(objectives))
    ncols = min(3, len(pairs))
    nrows = -(-len(pairs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.4 * nrows), squeeze=False)
    for ax, (i, j) in zip(axes.flat, pairs):
        for index, item in enumerate(series):
            _draw_series(ax, item, i, j, COLORS[index % len(COLORS)], annotate)
        ax.set_xlabel(objectives[i])
        ax.set_ylabel(objectives[j])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="best")
    fig.suptitle(title or "Pareto fronts (faded: dominated within its method; x: degenerate)", fontsize=10)
    fig.tight_layout()
    return fig


def _draw_series(ax, item: FrontSeries, i: int, j: int, color: str, annotate: bool) -> None:
    from moalign.pareto import is_nondominated

    points = np.asarray(item.points, dtype=float)
    bad = np.zeros(len(points), dtype=bool) if item.degenerate is None else np.asarray(item.degenerate, dtype=bool)
    used = np.ones_like(bad) if item.include_degenerate else ~bad
    keep = np.zeros(len(points), dtype=bool)
    if used.any():
        keep[used] = is_nondominated(points[used])
    front = points[keep][np.argsort(points[keep][:, i])]
    ax.plot(front[:, i], front[:, j], color=color, lw=1, alpha=0.7)
    ax.scatter(points[keep & ~bad, i], points[keep & ~bad, j], color=color, s=28, label=item.label, zorder=3)
    ax.scatter(points[~keep & ~bad, i], points[~keep & ~bad, j], color=color, s=28, alpha=FADED_ALPHA, zorder=2)
    if bad.any():
        ax.scatter(points[bad, i], points[bad, j], color=color, marker="x", s=40, zorder=4,
                   label=f"{item.label}: degenerate")
    if item.se is not None:
        se = np.asarray(item.se, dtype=float)
        ax.errorbar(points[:, i], points[:, j], xerr=se[:, i], yerr=se[:, j], fmt="none", ecolor=color, alpha=0.3, lw=0.8)
    if annotate:
        for label, point, solid in zip(point_labels(item.ws, points), points, keep):
            if label is None:
                continue
            ax.annotate(label, (point[i], point[j]), textcoords="offset points", xytext=(4, 4),
                        fontsize=6, color=color, alpha=1.0 if solid else FADED_ALPHA + 0.2)


def save_fronts(series: list[FrontSeries], objectives: list[str], path: str | Path, title: str | None = None) -> Path:
    """Draw and write the figure as PNG (written to a temporary name, then renamed)."""
    import os

    import matplotlib.pyplot as plt

    path = Path(path)
    fig = plot_fronts(series, objectives, title)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    os.replace(tmp, path)
    return path
