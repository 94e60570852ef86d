"""Stages shared by the DPO-family methods (DPO, DPO-LW, MODPO, the MGDA family): pairs, the reference cache,
one model per preference.

``pairs_stage`` writes the run's per-objective preference pairs once: the task's own pairs when it has them
(PKU-SafeRLHF, UltraFeedback, HelpSteer sources), else pairs built from scored responses (per objective the
higher score is chosen, ties dropped; :func:`moalign.data.pairs.pairs_from_scored`), scoring the responses
with the run's rewards when the task ships none. Conflicting comparisons (objectives disagree) are counted
into ``pairs_info.json``.

``per_preference_stages`` runs one :func:`moalign.methods.stages.training_stage` per point of the run's
training grid (stage ``<prefix>/<tag>``, the grid's tags); the Trainer's checkpoints live outside the stage
folder so that a killed run resumes mid-training. ``check_dpo_settings`` is the config-time check every
DPO-family method config runs in ``__post_init__``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moalign import distributed
from moalign.config import ADDED_LATER, ConfigError, RunConfig, check_range
from moalign.data.io import load_pairs, save_pairs
from moalign.data.pairs import MODES as PAIR_MODES
from moalign.data.pairs import conflict_mixture, conflict_stats, pairs_from_scored, subset_pairs
from moalign.data.schema import PairSet, ScoredSet
from moalign.data.task import load_task
from moalign.eval.grid import PreferenceGrid
from moalign.io_utils import atomic_write_json
from moalign.methods.stages import training_stage
from moalign.pipeline import Run
from moalign.rewards.lazy import LazyRewards
from moalign.train.reference import REFERENCE_MODES, pairset_reference_logps

PAIRS_FILE = "pairs.jsonl"
REFERENCE_FILE = "reference.npz"
INFO_FILE = "pairs_info.json"
PAIRS_FROM = ("auto", "dataset", "rewards")


@dataclass
class PairSettings:
    """How the pairs are made (shared section of every DPO-family method config)."""

    pairs_from: str = "auto"  # auto: the task's pairs, else its scores, else the rewards; dataset; rewards
    pair_mode: str = "all"  # from scores: all | best_worst | best_random (see moalign.data.pairs)
    min_margin: float = 0.0  # from scores: keep a pair only when the score gap exceeds this
    max_pairs_per_objective: int | None = None  # a seeded random subset when set
    # two objectives: SIPO's HelpSteer mixture, n = min(#conflicting, #agreeing) comparisons of which this
    # fraction conflict (moalign.data.pairs.conflict_mixture; official 0.6); None: every pair
    conflict_fraction: float | None = field(default=None, metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        if self.pairs_from not in PAIRS_FROM:
            raise ConfigError(f"method.pairs.pairs_from={self.pairs_from!r}: choose one of {', '.join(PAIRS_FROM)}")
        if self.pair_mode not in PAIR_MODES:
            raise ConfigError(f"method.pairs.pair_mode={self.pair_mode!r}: choose one of {', '.join(PAIR_MODES)}")
        if not np.isfinite(self.min_margin) or self.min_margin < 0:
            raise ConfigError(f"method.pairs.min_margin={self.min_margin!r}: must be a finite number >= 0 (0 keeps "
                              "every pair with distinct scores)")
        if self.conflict_fraction is not None:
            check_range("method.pairs.conflict_fraction", self.conflict_fraction, low=0, high=1,
                        fix="e.g. 0.6 (SIPO's HelpSteer mixture), or null for every pair")
        if self.max_pairs_per_objective is not None and self.max_pairs_per_objective < 1:
            raise ConfigError(f"method.pairs.max_pairs_per_objective={self.max_pairs_per_objective}: must be >= 1, "
                              "or null for every pair")


def check_dpo_settings(beta: float, reference: str) -> None:
    """ConfigError for a DPO temperature that is not > 0 or an unknown reference mode (``method.*``)."""
    if not np.isfinite(beta) or beta <= 0:
        raise ConfigError(f"method.beta={beta!r}: the DPO temperature must be a number > 0, e.g. method.beta=0.1")
    if reference not in REFERENCE_MODES:
        raise ConfigError(f"method.reference={reference!r}: choose one of {', '.join(REFERENCE_MODES)}")


def _task_pairs(config: RunConfig, settings: PairSettings) -> PairSet | None:
    """The task's pairs: the dataset's own, or built from its scored responses (scored by the run's rewards
    when it has no scores, every rank of a launch scoring its share); None on the other ranks."""
    objectives = list(config.task.objectives)
    with distributed.main_first():  # the first read may download the dataset: once, on the main rank
        data = load_task(config.task, seed=config.seed)
    if data.pairs is not None and settings.pairs_from in ("auto", "dataset"):
        return data.pairs
    if settings.pairs_from == "dataset" and data.responses.scores.shape[1] == 0:
        raise ValueError("method.pairs.pairs_from='dataset' but the task has neither pairs nor scores")
    scored = data.responses
    has_scores = list(scored.objectives) == objectives and scored.scores.shape[1] == len(objectives)
    raw = scored.scores if has_scores and settings.pairs_from != "rewards" else _reward_scores(config, scored)
    if not distributed.is_main():
        return None
    table = ScoredSet(scored.prompts, scored.responses, raw, objectives, scored.ids)
    return pairs_from_scored(table, objectives, settings.min_margin, settings.pair_mode, config.seed)


def _reward_scores(config: RunConfig, scored) -> np.ndarray | None:
    """(n, k) raw scores of the task's responses under the run's rewards (one spec per objective); under a
    launch each rank scores its share and the main rank gets them (None on the others)."""
    return LazyRewards.for_task(config.task).score(scored.prompts, scored.responses, sharded=True)


def _cap(pairs: PairSet, objectives: Sequence[str], cap: int | None, seed: int) -> PairSet:
    if cap is None:
        return pairs
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for name in objectives:
        idx = np.flatnonzero(np.asarray(pairs.objective) == name)
        keep.extend(sorted(rng.permutation(idx)[:cap].tolist()))
    return subset_pairs(pairs, np.asarray(sorted(keep), dtype=int))


def _mixture(pairs: PairSet, objectives: Sequence[str], fraction: float, seed: int) -> PairSet:
    if len(objectives) != 2:
        raise ConfigError(f"method.pairs.conflict_fraction={fraction} mixes the comparisons two objectives decide "
                          f"differently, but task.objectives={list(objectives)}; choose two objectives or set it to null")
    return conflict_mixture(pairs, (objectives[0], objectives[1]), fraction, seed)


def pairs_stage(config: RunConfig, run: Run, settings: PairSettings) -> Path:
    """Stage ``pairs``: ``pairs.jsonl`` (every objective) and ``pairs_info.json`` (counts, conflicts), written by
    the main rank of a launch after every rank scored its share of the responses."""
    objectives = list(config.task.objectives)

    def compute(out: Path) -> None:
        pairs = _task_pairs(config, settings)
        if not distributed.is_main():
            return
        if settings.conflict_fraction is not None:
            pairs = _mixture(pairs, objectives, settings.conflict_fraction, config.seed)
        pairs = _cap(pairs, objectives, settings.max_pairs_per_objective, config.seed)
        counts = {name: int(sum(o == name for o in pairs.objective)) for name in objectives}
        empty = [name for name, n in counts.items() if n == 0]
        if empty:
            raise ValueError(f"no preference pairs for objective(s) {empty}: check task.objectives and the data")
        save_pairs(pairs, out / PAIRS_FILE)
        atomic_write_json(out / INFO_FILE, {"pairs_per_objective": counts, "conflicts": conflict_stats(pairs, objectives)})

    inputs = {"task": config.task, "pairs": settings, "seed": config.seed}
    return run.stage("pairs", inputs, compute, ranks="all")


def load_pairsets(stage_dir: Path, objectives: Sequence[str]) -> dict[str, PairSet]:
    """The pairs the ``pairs`` stage wrote, one PairSet per objective in ``objectives`` (any subset of the
    run's objectives; score columns stay in the run's order, as written)."""
    pairs = load_pairs(Path(stage_dir) / PAIRS_FILE)
    missing = [name for name in objectives if name not in set(pairs.objective)]
    if missing:
        raise ValueError(f"{stage_dir}: no pairs for objective(s) {missing}; the pairs stage wrote {sorted(set(pairs.objective))}")
    return {name: pairs.for_objective(name) for name in objectives}


def reference_stage(config: RunConfig, run: Run, max_length: int) -> str:
    """Stage ``reference/len=<max_length>``: the base model's log-probs of every pair, computed once per run
    and shared by every model trained on these pairs (every rank of a launch computes its share of the pairs);
    returns the stage name."""
    objectives = list(config.task.objectives)
    name = f"reference/len={max_length}"

    def compute(out: Path) -> None:
        pairsets = load_pairsets(run.stage_dir("pairs"), objectives)
        arrays = pairset_reference_logps(config.model, pairsets, max_length, sharded=True)
        if arrays is None:  # another rank of a launch: it computed its share, the main rank writes
            return
        np.savez(out / REFERENCE_FILE, **{f"k{i}": arrays[o] for i, o in enumerate(objectives)})

    run.stage(name, {"model": config.model, "max_length": max_length}, compute, depends_on=["pairs"], ranks="all")
    return name


def reference_columns(run: Run, stage: str | None, objectives: Sequence[str]) -> dict:
    """``{objective: {"ref_chosen": ..., "ref_rejected": ...}}`` from a reference stage (None: no columns)."""
    if stage is None:
        return {}
    with np.load(run.stage_dir(stage) / REFERENCE_FILE) as data:
        return {o: {"ref_chosen": data[f"k{i}"][:, 0], "ref_rejected": data[f"k{i}"][:, 1]}
                for i, o in enumerate(objectives)}


def cached_reference(config: RunConfig, run: Run, reference: str, max_length: int) -> str | None:
    """The reference stage when the method precomputes its reference, else None (computed on the fly)."""
    return reference_stage(config, run, max_length) if reference == "precomputed" else None


def per_preference_stages(
    run: Run,
    grid: PreferenceGrid,
    train_one: Callable[[np.ndarray], Callable[[Path, Path], None]],
    inputs: Callable[[np.ndarray], dict],
    *,
    depends_on: Sequence[str],
    prefix: str = "train",
) -> dict[tuple[float, ...], Path]:
    """One training stage ``<prefix>/<tag>`` per preference w of ``grid`` (methods that train one model per
    preference); ``train_one(w)`` is that stage's ``train(checkpoint_dir, save_dir)``, ``inputs(w)`` its
    hashed inputs. Returns ``{w: saved folder}``, the keys of a :class:`~moalign.eval.family.CheckpointFamily`."""
    folders = {}
    for w, tag in zip(grid.points, grid.tags, strict=True):
        folder = training_stage(run, f"{prefix}/{tag}", inputs(w), train_one(w), depends_on)
        folders[tuple(float(x) for x in w)] = folder
    return folders
