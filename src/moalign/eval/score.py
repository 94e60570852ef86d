"""Scoring one preference's generations: per-prompt rows on disk and one point (mean, standard error) per w.

Rewards see the original test prompt, never the policy's conditioned prompt (RiC's reward targets would
otherwise leak into the reward model's input). Every row also records whether the response collapsed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from moalign.eval.rows import read_rows, write_rows
from moalign.pipeline import Run
from moalign.rewards.base import score_matrix_on_ranks


def point_summary(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (sample std / sqrt(n); 0 for a single row) per objective."""
    scores = np.asarray(scores, dtype=float)
    n = scores.shape[0]
    if n == 0:
        raise ValueError("cannot summarise a point with no scored responses")
    se = scores.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(scores.shape[1])
    return scores.mean(axis=0), se


def score_stage(
    run: Run,
    generation: str,
    objectives: Sequence[str],
    get_rewards: Callable[[], list],
    rewards_id: list,
    progress: bool = False,
) -> str:
    """Score the rows of stage ``generation`` (``rows.jsonl``) and summarise them (``point.json``)."""
    name = generation.replace("eval/generate/", "eval/score/", 1)
    inputs = {"objectives": list(objectives), "rewards": rewards_id, "collapse_rule": "moalign.eval.collapse.is_collapsed"}

    def compute(tmp: Path) -> None:
        from moalign.eval.collapse import is_collapsed
        from moalign.io_utils import atomic_write_json
        rows = read_rows(run.stage_dir(generation) / "generations.jsonl")
        scores = score_matrix_on_ranks(get_rewards(), [r["prompt"] for r in rows], [r["response"] for r in rows],
                                       progress)
        if scores is None:  # another rank of a launch: the main rank writes the rows
            return
        collapsed = [bool(is_collapsed(row["response"])) for row in rows]
        for row, values, flag in zip(rows, scores, collapsed):
            row["scores"] = dict(zip(objectives, values.tolist()))
            row["collapsed"] = flag
        write_rows(tmp / "rows.jsonl", rows)
        mean, se = point_summary(scores)
        point = {"w": rows[0]["w"], "mean": mean, "se": se, "n": len(rows), "collapse_rate": float(np.mean(collapsed))}
        atomic_write_json(tmp / "point.json", {"objectives": list(objectives), **point})

    run.stage(name, inputs, compute, depends_on=[generation], ranks="all")
    return name
