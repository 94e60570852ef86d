"""The offline-data stage shared by the SFT-route methods (ParetoHqD, RiC): every train response of the task
(chosen and rejected alike) with its raw score under the run's rewards, saved once in the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moalign import distributed
from moalign.config import RunConfig
from moalign.pipeline import Run
from moalign.rewards.lazy import LazyRewards

RESPONSES_FILE = "responses.jsonl"
SCORE_SOURCES = ("rewards", "dataset")


def _raw_scores(scored, config: RunConfig, scores_from: str, rewards: LazyRewards) -> np.ndarray | None:
    """The responses' (n, k) raw scores; under a launch every rank scores its share and only the main rank gets
    them (None on the others)."""
    objectives = list(config.task.objectives)
    if scores_from == "dataset":
        if list(scored.objectives) != objectives or scored.scores.shape[1] != len(objectives):
            raise ValueError(
                f"method.scores_from='dataset' but the train data is scored for {list(scored.objectives)}, "
                f"not task.objectives={objectives}; score it with scores_from='rewards'"
            )
        return scored.scores
    if scores_from != "rewards":
        raise ValueError(f"method.scores_from={scores_from!r}; choose one of {', '.join(SCORE_SOURCES)}")
    return rewards.score(scored.prompts, scored.responses, sharded=True)


def score_offline_stage(config: RunConfig, run: Run, rewards: LazyRewards, scores_from: str = "rewards") -> Path:
    """Stage ``score``: the task's train responses with raw (un-normalised) scores in ``responses.jsonl``.
    Every rank of a launch scores its share of the responses; the main rank writes them."""
    from moalign.data import save_scored
    from moalign.data.schema import ScoredSet
    from moalign.data.task import load_task

    def compute(out: Path) -> None:
        with distributed.main_first():  # the first read may download the dataset: once, on the main rank
            data = load_task(config.task, seed=config.seed)
        scored = data.responses
        raw = _raw_scores(scored, config, scores_from, rewards)
        if not distributed.is_main():
            return
        keep = [i for i, r in enumerate(scored.responses) if r.strip()]  # an empty response cannot be trained on
        table = ScoredSet(scored.prompts, scored.responses, raw, list(config.task.objectives), scored.ids).subset(
            np.asarray(keep, dtype=int)
        )
        save_scored(table, out / RESPONSES_FILE)

    inputs = {"task": config.task, "scores_from": scores_from, "seed": config.seed}
    return run.stage("score", inputs, compute, ranks="all")


def load_offline(stage_dir: Path, objectives: Sequence[str]):
    """The ScoredSet the ``score`` stage wrote."""
    from moalign.data import load_scored

    return load_scored(Path(stage_dir) / RESPONSES_FILE, objectives=list(objectives))
