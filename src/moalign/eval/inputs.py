"""The two inputs every evaluation needs before it sweeps: the fixed test prompts and the train-set statistics.

* ``eval/prompts``: the test prompts (and their golden answers when the task has them), a seeded subset of at
  most ``task.num_test_prompts``, so every preference and every method sees exactly the same prompts.
* ``eval/train_stats``: per-objective z-score statistics (mean, std) of the run's rewards over the task's
  train responses. They normalise the front for the z-scored hypervolume and set the default reference point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moalign.config import RunConfig
from moalign.eval.rows import file_digest, read_rows, write_rows
from moalign.eval.stages import PROMPTS_STAGE, STATS_STAGE
from moalign.pipeline import Run


@dataclass
class EvalPrompts:
    prompts: list[str]
    golden: list[str] | None  # reference answers for the win rate, when the task has them


def read_prompts_file(path: str | Path) -> EvalPrompts:
    """A JSONL file of ``{"prompt": ..., "golden": ...}`` rows (``golden`` optional, all or none)."""
    rows = read_rows(Path(path))
    for number, row in enumerate(rows, start=1):
        if not isinstance(row.get("prompt"), str):
            raise ValueError(f"{path}: line {number}: every row needs a string field 'prompt'")
    goldens = [row.get("golden") for row in rows]
    if any(g is None for g in goldens) and not all(g is None for g in goldens):
        raise ValueError(f"{path}: 'golden' is given on some rows but not all; give it on every row or none")
    return EvalPrompts([row["prompt"] for row in rows], None if goldens and goldens[0] is None else goldens)


def _task_prompts(config: RunConfig) -> EvalPrompts:
    if config.eval.prompts_file:
        return read_prompts_file(config.eval.prompts_file)
    from moalign.data.task import load_task

    task = load_task(config.task, seed=config.seed)
    return EvalPrompts(list(task.test_prompts), list(task.golden) if task.golden else None)


def select_prompts(found: EvalPrompts, n: int, seed: int) -> EvalPrompts:
    """A seeded subset of ``n`` prompts in their original order (all of them when there are at most ``n``)."""
    if len(found.prompts) <= n:
        return found
    keep = np.sort(np.random.default_rng(seed).choice(len(found.prompts), size=n, replace=False))
    golden = [found.golden[i] for i in keep] if found.golden else None
    return EvalPrompts([found.prompts[i] for i in keep], golden)


def _source_inputs(task) -> dict:
    """What the test prompts depend on. The training data and the chat settings count only where they can
    change them (the prompts come from ``train_data``; a chat template is set), so the stage of a run made
    before those settings existed is still found done."""
    keys = ["name", "source", "test_prompts", "test_split", "prompt_template"]
    if task.name != "embedded" and not task.test_prompts:
        keys += ["train_data", "train_split"]  # test split or held-out prompts of the training data
    if task.chat_template != "auto" or task.chat_tokenizer is not None:
        keys += ["chat_template", "chat_tokenizer"]
    return {k: getattr(task, k) for k in keys}


def prompts_stage(run: Run, config: RunConfig) -> str:
    """Fix the test prompts of this run (stage ``eval/prompts``, file ``prompts.jsonl``)."""
    task = config.task
    inputs = {
        "source": _source_inputs(task),
        "prompts_file": config.eval.prompts_file,
        "prompts_digest": file_digest(config.eval.prompts_file) if config.eval.prompts_file else None,
        "num_test_prompts": task.num_test_prompts,
        "seed": [config.seed, config.eval.seed],
    }

    def compute(tmp: Path) -> None:
        chosen = select_prompts(_task_prompts(config), task.num_test_prompts, config.eval.seed)
        if not chosen.prompts:
            raise ValueError("the evaluation has no test prompts: check task.test_prompts or eval.prompts_file")
        golden = chosen.golden or [None] * len(chosen.prompts)
        write_rows(tmp / "prompts.jsonl", ({"index": i, "prompt": p, "golden": g} for i, (p, g) in enumerate(zip(chosen.prompts, golden))))

    run.stage(PROMPTS_STAGE, inputs, compute)
    return PROMPTS_STAGE


def load_prompts(run: Run) -> EvalPrompts:
    rows = read_rows(run.stage_dir(PROMPTS_STAGE) / "prompts.jsonl")
    golden = [row["golden"] for row in rows]
    return EvalPrompts([row["prompt"] for row in rows], None if any(g is None for g in golden) else golden)


def stats_stage(run: Run, config: RunConfig, get_rewards: Callable[[], list], rewards_id: list) -> str | None:
    """Fit (or copy) the train-set z-score statistics; None when ``eval.normalization`` is ``"none"``."""
    mode = config.eval.normalization
    if mode == "none":
        return None
    if mode == "auto":
        inputs = {"mode": "auto", "task": config.task, "rewards": rewards_id, "n": config.eval.stats_samples,
                  "seed": [config.seed, config.eval.seed]}
    else:
        if not Path(mode).is_file():
            raise FileNotFoundError(f"eval.normalization={mode!r}: not 'auto', 'none' or an existing ZScore JSON file")
        inputs = {"mode": "file", "path": mode, "digest": file_digest(mode)}

    def compute(tmp: Path) -> None:
        from moalign.rewards.normalize import ZScore

        if mode == "auto":
            zscore = ZScore().fit(_train_scores(config, get_rewards()), list(config.task.objectives))
        else:
            zscore = ZScore.load(mode).select(list(config.task.objectives))
        zscore.save(tmp / "zscore.json")

    run.stage(STATS_STAGE, inputs, compute)
    return STATS_STAGE


def _train_scores(config: RunConfig, rewards: list) -> np.ndarray:
    """The run's rewards on at most ``eval.stats_samples`` seeded train responses of the task."""
    from moalign.data.task import load_task
    from moalign.rewards.base import score_matrix

    data = load_task(config.task, seed=config.seed).responses
    if len(data) == 0:
        raise ValueError("eval.normalization='auto' needs train responses; the task has none (set it to 'none')")
    n = min(len(data), config.eval.stats_samples)
    keep = np.sort(np.random.default_rng(config.eval.seed).choice(len(data), size=n, replace=False))
    data = data.subset(keep)
    return score_matrix(rewards, data.prompts, data.responses, progress=config.eval.progress)


def load_zscore(run: Run, stage: str | None):
    """The saved statistics of ``stage`` (a ``ZScore``), or None when the run has none."""
    if stage is None:
        return None
    from moalign.rewards.normalize import ZScore

    return ZScore.load(run.stage_dir(stage) / "zscore.json")
