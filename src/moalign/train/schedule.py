"""Which preference w a training step uses: fixed, or drawn from a Dirichlet each step (or for each pair).

A draw is a pure function of ``(seed, step)`` (per pair: ``(seed, step, micro-batch)``): numpy's Generator
seeded with that tuple. So every DDP rank draws the same w without communicating, and a resumed run continues
the same sequence without any saved RNG state; the trainer still records the schedule in its checkpoint
state and refuses to resume under a different one.

The trainer hands the drawn w to the model hook (before the forward) and to the loss
(``loss_fn(logps, k, w)``); :class:`~moalign.train.weighting.PreferenceWeights` turns it into the linear
scalarisation sum_k w_k L_k.

>>> s = PreferenceSchedule(kind="dirichlet", alpha=1.0, seed=0)
>>> bool((s.draw(3, 2) == s.draw(3, 2)).all()), bool((s.draw(3, 2) == s.draw(4, 2)).all())
(True, False)
>>> PreferenceSchedule(kind="fixed", w=[0.25, 0.75]).draw(7, 2).tolist()
[0.25, 0.75]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from moalign.config import ConfigError
from moalign.pareto import sample_simplex, validate_preference

SCHEDULE_KINDS = ("fixed", "dirichlet")


@dataclass(frozen=True)
class PreferenceSchedule:
    """How w is chosen: ``fixed`` (``w``) or ``dirichlet`` (concentration ``alpha``: a scalar, symmetric,
    1.0 = uniform on the simplex, or one value per objective) once per optimiser step, or once per pair when
    ``per_sample``. ``seed`` None means the trainer's seed."""

    kind: str = "dirichlet"
    alpha: float | tuple[float, ...] = 1.0
    w: tuple[float, ...] | None = None
    per_sample: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ConfigError(f"schedule.kind={self.kind!r}: choose one of {', '.join(SCHEDULE_KINDS)}")
        alpha = np.atleast_1d(np.asarray(self.alpha, dtype=np.float64))
        if alpha.ndim != 1 or not np.all(np.isfinite(alpha)) or not np.all(alpha > 0):
            raise ConfigError(f"schedule.alpha={self.alpha!r}: the Dirichlet concentration must be > 0 "
                              "(a number, or one per objective; 1.0 = uniform on the simplex)")
        if self.kind == "fixed":
            if self.w is None:
                raise ConfigError("schedule.kind='fixed' needs schedule.w, e.g. w=[0.5, 0.5]")
            try:
                validate_preference(self.w, len(self.w), "schedule.w")
            except ValueError as err:
                raise ConfigError(str(err)) from None
        object.__setattr__(self, "alpha", float(alpha[0]) if np.ndim(self.alpha) == 0 else tuple(alpha.tolist()))
        if self.w is not None:
            object.__setattr__(self, "w", tuple(float(x) for x in self.w))

    @classmethod
    def fixed(cls, w) -> PreferenceSchedule:
        return cls(kind="fixed", w=tuple(float(x) for x in w))

    def with_seed(self, seed: int) -> PreferenceSchedule:
        """This schedule with ``seed`` filled in when it has none (the trainer passes its own)."""
        return self if self.seed is not None else dataclasses.replace(self, seed=int(seed))

    def check_objectives(self, num_objectives: int) -> None:
        """ValueError when ``w`` or a per-objective ``alpha`` has another length than the objectives."""
        for name, value in (("w", self.w), ("alpha", self.alpha)):
            if isinstance(value, tuple) and len(value) != num_objectives:
                raise ValueError(f"schedule.{name}={list(value)} has {len(value)} entries for {num_objectives} "
                                 "objectives; give one per objective (or a scalar alpha)")

    def draw(self, step: int, num_objectives: int, *, rows: int | None = None, micro: int = 0) -> np.ndarray:
        """The preference of optimiser step ``step`` (0-based): (K,), or (rows, K) when ``per_sample`` (one row
        per pair of micro-batch ``micro`` of that step, in the order of the step's global batch)."""
        self.check_objectives(num_objectives)
        if self.kind == "fixed":
            w = np.asarray(self.w, dtype=np.float64)
            return np.tile(w, (rows or 1, 1)) if self.per_sample else w
        seed = 0 if self.seed is None else self.seed
        if self.per_sample:
            if rows is None:
                raise ValueError("a per-sample schedule draws one w per pair: pass rows")
            return sample_simplex(num_objectives, rows, np.random.default_rng([seed, step, micro]), self.alpha)
        return sample_simplex(num_objectives, 1, np.random.default_rng([seed, step]), self.alpha)[0]

    def state_dict(self) -> dict:
        """What a checkpoint records (a resume under another schedule is refused)."""
        return {"kind": self.kind, "alpha": self.alpha if isinstance(self.alpha, float) else list(self.alpha),
                "w": None if self.w is None else list(self.w), "per_sample": self.per_sample, "seed": self.seed}

    def check_state(self, state: dict | None, where: str = "checkpoint") -> None:
        """ValueError naming the difference when ``state`` (a checkpoint's) is not this schedule's."""
        mine = self.state_dict()
        if state != mine:
            raise ValueError(f"{where} was trained with preference schedule {state}, this trainer has {mine}; "
                             "resume with the same schedule (and seed), or train into a fresh checkpoint folder")
