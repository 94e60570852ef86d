"""Per-objective z-score normalisation, saved with the run, and RiC's rounding.

Reward models live on unrelated scales, so methods that put scores into prompts (RiC) or compare objectives
(plots, hypervolume) normalise each column: z = (r - mean) / std, with mean/std fitted once on the train-set
score matrix. The statistics are saved as JSON together with the objective names, so later scoring (online
samples, evaluation) reuses the *same* statistics and a file fitted for other objectives is refused.

RiC (spec section 1 and 11) rounds raw scores to 0.1 *before* fitting and normalising, and rounds the
normalised scores to 0.1 *again*: :func:`fit_ric_stats` and :func:`ric_normalize` do exactly that. Rounding
uses ``np.round`` (half to even), as RiC does for raw scores and online labels. RiC's offline labels are kept
unrounded (``round_z=False``) and rounded only when written into the prompt, with Python's ``round``
(``moalign.methods.ric.conditioning.format_score``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moalign.io_utils import atomic_write_json

FORMAT = "moalign.zscore/1"


def round_scores(scores, decimals: int = 1) -> np.ndarray:
    """Scores rounded to ``decimals`` places with ``np.round`` (RiC's rounding; half to even)."""
    return np.round(np.asarray(scores, dtype=np.float64), decimals)


class ZScore:
    """Per-objective mean/std of a train-set score matrix; ``transform`` maps raw -> z, ``inverse`` maps back.

    Build it unfitted and fit it (``ZScore(["harmless", "helpful"]).fit(scores)``, or ``ZScore().fit(scores,
    objectives)``), from known stats (``ZScore(["harmless"], mean=[-0.9473], std=[1.9203])``), or from a file
    (``ZScore.load(path)``).

    ``ddof=0`` (population std) matches ``np.std`` as used by RiC. ``objectives`` name the columns; they are
    saved with the stats and checked when the stats are reused.
    """

    def __init__(self, objectives: Sequence[str] | None = None, mean=None, std=None, ddof: int = 0):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = None if std is None else np.asarray(std, dtype=np.float64).reshape(-1)
        self.objectives = None if objectives is None else list(objectives)
        self.ddof = ddof
        self.n: int | None = None
        if self.mean is not None:
            self._check_stats()

    @property
    def k(self) -> int:
        self._require_fitted()
        return int(self.mean.shape[0])

    def fit(self, scores, objectives: Sequence[str] | None = None) -> ZScore:
        """Fit mean/std on an (n, k) score matrix; returns self. A constant column is an error."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[0] == 0:
            raise ValueError(f"ZScore.fit needs a non-empty (n, k) score matrix, got shape {scores.shape}")
        if not np.all(np.isfinite(scores)):
            raise ValueError("ZScore.fit: the score matrix holds NaN or inf; score every response first")
        names = list(objectives) if objectives is not None else self.objectives
        if names is None:
            names = [f"objective_{i}" for i in range(scores.shape[1])]
        self.objectives, self.n = names, int(scores.shape[0])
        self.mean = scores.mean(axis=0)
        self.std = scores.std(axis=0, ddof=self.ddof) if scores.shape[0] > self.ddof else np.zeros(scores.shape[1])
        self._check_stats()
        return self

    def _check_stats(self) -> None:
        if self.mean.shape != self.std.shape:
            raise ValueError(f"ZScore: mean has {self.mean.shape[0]} entries but std has {self.std.shape[0]}")
        if self.objectives is not None and len(self.objectives) != self.mean.shape[0]:
            raise ValueError(f"ZScore: {len(self.objectives)} objective names for {self.mean.shape[0]} columns")
        names = self.objectives or [str(i) for i in range(self.mean.shape[0])]
        for name, std, mean in zip(names, self.std, self.mean):
            if not np.isfinite(std) or std <= 0:
                raise ValueError(
                    f"ZScore: objective {name!r} has standard deviation {std} (every train score is about {mean:g}); "
                    "z-scores are undefined. Score more varied responses, or drop or replace this reward."
                )

    def _require_fitted(self) -> None:
        if self.mean is None:
            raise ValueError("ZScore is not fitted: call fit(scores) or ZScore.load(path) first")

    def _check_width(self, scores: np.ndarray) -> None:
        if scores.ndim == 0 or scores.shape[-1] != self.k:
            raise ValueError(f"ZScore fitted on {self.k} objectives {self.objectives} got scores of shape {scores.shape}")

    def transform(self, scores) -> np.ndarray:
        """(scores - mean) / std, column-wise; any shape whose last axis is k. Input is not modified."""
        self._require_fitted()
        scores = np.asarray(scores, dtype=np.float64)
        self._check_width(scores)
        return (scores - self.mean) / self.std

    def inverse_transform(self, z) -> np.ndarray:
        """z * std + mean: back to raw reward units."""
        self._require_fitted()
        z = np.asarray(z, dtype=np.float64)
        self._check_width(z)
        return z * self.std + self.mean

    def select(self, objectives: Sequence[str]) -> ZScore:
        """The stats of the named objectives, in that order (error naming any objective not fitted)."""
        self._require_fitted()
        missing = [name for name in objectives if name not in (self.objectives or [])]
        if missing:
            raise ValueError(f"ZScore has no stats for {missing}; it was fitted on {self.objectives}")
        index = [self.objectives.index(name) for name in objectives]
        return ZScore(list(objectives), self.mean[index], self.std[index], self.ddof)

    def to_dict(self) -> dict:
        self._require_fitted()
        return {
            "format": FORMAT,
            "objectives": self.objectives,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "ddof": self.ddof,
            "n": self.n,
        }

    def save(self, path) -> Path:
        """Write the stats as JSON (atomically); returns the path."""
        atomic_write_json(Path(path), self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path, objectives: Sequence[str] | None = None) -> ZScore:
        """Read saved stats; with ``objectives``, they must be exactly the saved ones (same order)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a moalign z-score file (format {data.get('format')!r}, want {FORMAT!r})")
        stats = cls(data["objectives"], data["mean"], data["std"], int(data.get("ddof", 0)))
        stats.n = data.get("n")
        if objectives is not None and list(objectives) != stats.objectives:
            raise ValueError(
                f"{path}: stats were fitted for objectives {stats.objectives} but this run scores {list(objectives)}; "
                "refit the stats on this run's train scores, or use ZScore.select(...) for a subset"
            )
        return stats

    def __repr__(self) -> str:
        if self.mean is None:
            return "ZScore(unfitted)"
        return f"ZScore(objectives={self.objectives}, mean={self.mean.tolist()}, std={self.std.tolist()})"


def fit_ric_stats(raw, objectives: Sequence[str] | None = None) -> ZScore:
    """RiC's statistics: mean/std (population) of the raw train scores after rounding them to 0.1."""
    return ZScore().fit(round_scores(raw, 1), objectives)


def ric_normalize(raw, stats: ZScore, round_raw: bool = True, *, round_z: bool = True) -> np.ndarray:
    """RiC's normalised scores: round(( round(raw, 1) - mean ) / std, 1).

    ``round_raw=False`` skips the first rounding: RiC's online stage (``get_rewards`` with stats) normalises
    the unrounded raw score; the offline labelling rounds first. ``round_z=False`` skips the second: RiC's
    offline labels stay unrounded in its dataset (its quantile filter reads them so); only the prompt text
    rounds them.
    """
    raw = round_scores(raw, 1) if round_raw else np.asarray(raw, dtype=np.float64)
    z = stats.transform(raw)
    return round_scores(z, 1) if round_z else z
