"""A run's preference grid, resolved once: its points and the one tag of each point.

Training (one model per w) and evaluation (one sweep stage per w) both name a preference by its tag from
:func:`moalign.pareto.preference_tag`, at the digits that keep this grid's tags distinct; a trained family
that does not cover the evaluation grid is refused before the first stage, not after training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moalign.pareto import preference_grid, preference_tag, tag_digits


@dataclass(frozen=True)
class PreferenceGrid:
    """(m, k) preferences and the number of decimals in their tags."""

    points: np.ndarray
    digits: int

    @classmethod
    def from_points(cls, points) -> PreferenceGrid:
        points = np.asarray(points, dtype=np.float64)
        return cls(points, tag_digits(points))

    @classmethod
    def parse(cls, spec: str, num_objectives: int) -> PreferenceGrid:
        """A grid spec (``ric``, ``simplex:<n>``, ``list:...``) for ``num_objectives`` objectives."""
        return cls.from_points(preference_grid(spec, num_objectives))

    @property
    def tags(self) -> list[str]:
        return [self.tag(w) for w in self.points]

    def tag(self, w: Sequence[float]) -> str:
        return preference_tag(w, self.digits)

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self):
        return iter(self.points)


def eval_grid(config) -> PreferenceGrid:
    """The evaluation grid of a :class:`moalign.config.RunConfig` (``eval.grid``)."""
    return PreferenceGrid.parse(config.eval.grid, len(config.task.objectives))


def training_grid(config, spec: str | None) -> PreferenceGrid:
    """The grid a per-preference method trains: ``spec`` when given, else the evaluation grid; refused when
    it misses a point of the evaluation grid (the family could not answer that w)."""
    evaluated = eval_grid(config)
    grid = evaluated if spec is None else PreferenceGrid.parse(spec, len(config.task.objectives))
    check_covers(grid, evaluated, where=f"the method's grid {spec!r}")
    return grid


def check_covers(trained: PreferenceGrid, evaluated: PreferenceGrid, where: str = "the family") -> None:
    """ValueError naming the missing preferences when ``evaluated`` has a point that ``trained`` lacks."""
    missing = [w for w in evaluated.points if not np.any(np.all(np.isclose(trained.points, w, atol=1e-9), axis=1))]
    if missing:
        raise ValueError(
            f"{where} has no model for evaluation preference(s) {[np.round(w, 6).tolist() for w in missing]} "
            "(eval.grid); train those too (set the method's grid to eval.grid, or leave it unset) or evaluate "
            "on the trained grid (eval.grid=list:...)"
        )
