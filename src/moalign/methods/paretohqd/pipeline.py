"""ParetoHqD's stages (spec section 2), each resumable inside the run directory:

``score`` (raw scores of every offline response) -> ``select`` (normalise; HQ set; k nearest per ray)
-> ``stage1/w=...`` (one SFT model per preference) -> ``generate2`` (M+1 representative stage-1 models
answer fresh prompts; scored) -> ``select2`` (HQ layers of the new data; k/2 nearest per ray)
-> ``stage2/w=...`` (each preference's stage-1 model fine-tuned further on its new data).

The result is a :class:`~moalign.eval.family.CheckpointFamily`: one checkpoint per preference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from moalign import distributed
from moalign.config import RunConfig
from moalign.data.prompts import prompt_groups, sample_prompts
from moalign.eval.generate import generate_from_dir
from moalign.eval.grid import PreferenceGrid, training_grid
from moalign.io_utils import atomic_write_json
from moalign.methods.offline_data import load_offline, score_offline_stage
from moalign.methods.paretohqd.config import ParetoHqDConfig
from moalign.methods.paretohqd.select import Selection, representatives, select_for_grid
from moalign.methods.stages import training_stage
from moalign.pipeline import Run
from moalign.rewards.lazy import LazyRewards

STATS_FILE = "zscore.json"
SELECTION_FILE = "selection.json"
GENERATED_FILE = "generated.jsonl"


def _normalise(scores: np.ndarray, stats) -> np.ndarray:
    return scores if stats is None else stats.transform(scores)


def _load_stats(select_dir: Path):
    from moalign.rewards.normalize import ZScore

    path = Path(select_dir) / STATS_FILE
    return ZScore.load(path) if path.is_file() else None


def _write_selection(out: Path, selection: Selection, tags: list[str], k: int) -> None:
    info = selection.to_dict() | {"tags": tags, "k": k}
    short = [t for t, ix in zip(tags, selection.indices) if len(ix) < k]
    if short:
        print(f"[paretohqd] {len(short)} preference(s) got fewer than k={k} points (HQ set: "
              f"{selection.hq.shape[0]} rows); raise num_layers for more: {short}")
    atomic_write_json(out / SELECTION_FILE, info)


def _select(scores: np.ndarray, prompts, grid: np.ndarray, m: ParetoHqDConfig, *, k: int, num_layers: int,
            min_hq_size: int) -> Selection:
    """ParetoHqD's selection with the method's ideal/nadir rule and per-prompt cap."""
    return select_for_grid(
        scores, grid, k=k, num_layers=num_layers, groups=prompt_groups(prompts), max_per_prompt=m.max_per_prompt,
        rule=m.ideal_nadir, ideal=m.ideal, nadir=m.nadir, min_hq_size=min_hq_size,
    )


def select_stage(config: RunConfig, run: Run, grid: PreferenceGrid) -> Path:
    """Stage ``select``: normalise the offline scores, take the HQ set and the k nearest rows per ray."""
    m: ParetoHqDConfig = config.method

    def compute(out: Path) -> None:
        data = load_offline(run.stage_dir("score"), config.task.objectives)
        stats = None
        if m.normalize == "zscore":
            from moalign.rewards.normalize import ZScore

            stats = ZScore().fit(data.scores, list(config.task.objectives))
            stats.save(out / STATS_FILE)
        elif m.normalize != "none":
            raise ValueError(f"ParetoHqD: method.normalize={m.normalize!r}; choose 'zscore' or 'none'")
        selection = _select(_normalise(data.scores, stats), data.prompts, grid.points, m, k=m.k,
                            num_layers=m.num_layers, min_hq_size=m.min_hq_size)
        _write_selection(out, selection, grid.tags, m.k)

    keys = ("normalize", "ideal_nadir", "ideal", "nadir", "num_layers", "min_hq_size", "k", "max_per_prompt")
    inputs = {key: getattr(m, key) for key in keys} | {"grid": grid.points.tolist()}
    return run.stage("select", inputs, compute, depends_on=["score"])


def _train_stage(config, run, name, data, index, init, settings, deps) -> Path:
    from moalign.train.sft import train_sft

    def compute(checkpoints: Path, out: Path) -> None:
        prompts = [data.prompts[i] for i in index]
        responses = [data.responses[i] for i in index]
        train_sft(init, prompts, responses, settings, out, seed=config.seed, checkpoint_dir=checkpoints,
                  model_config=config.model)

    inputs = {"settings": settings, "model": config.model, "seed": config.seed, "rows": len(index)}
    return training_stage(run, name, inputs, compute, depends_on=deps)


def stage1(config: RunConfig, run: Run, tags: list[str]) -> dict[str, Path]:
    """One SFT model per preference on its own selected rows, from the base model."""
    data = load_offline(run.stage_dir("score"), config.task.objectives)
    selected = json.loads((run.stage_dir("select") / SELECTION_FILE).read_text())["indices"]
    return {
        tag: _train_stage(
            config, run, f"stage1/{tag}", data, index, config.model.name_or_path, config.method.train, ["select"]
        )
        for tag, index in zip(tags, selected)
    }


def generate2_stage(config: RunConfig, run: Run, grid: PreferenceGrid, rewards: LazyRewards) -> Path:
    """Stage ``generate2``: the representative stage-1 models answer fresh prompts; raw scores saved. Under a
    launch every rank decodes and scores its share, and the main rank writes."""
    from moalign.data import save_scored
    from moalign.data.schema import ScoredSet

    m: ParetoHqDConfig = config.method
    reps = [grid.tags[i] for i in representatives(grid.points)]

    def compute(out: Path) -> None:
        data = load_offline(run.stage_dir("score"), config.task.objectives)
        prompts = sample_prompts(data.prompts, m.stage2_prompts, config.seed)
        rows_p, rows_r, ids = [], [], []
        for j, tag in enumerate(reps):  # every rank decodes its share; the main rank gets the texts
            texts = generate_from_dir(run.stage_dir(f"stage1/{tag}"), prompts, m.stage2_generation, config.seed + j,
                                      model_config=config.model, sharded=True)
            if texts is None:
                continue
            keep = [i for i, t in enumerate(texts) if t.strip()]
            rows_p += [prompts[i] for i in keep]
            rows_r += [texts[i] for i in keep]
            ids += [f"{tag}:{i}" for i in keep]
        rows_p, rows_r, ids = distributed.from_main((rows_p, rows_r, ids))  # every rank scores its share
        raw = rewards.score(rows_p, rows_r, sharded=True)
        if not distributed.is_main():
            return
        save_scored(ScoredSet(rows_p, rows_r, raw, list(config.task.objectives), ids), out / GENERATED_FILE)

    inputs = {"prompts": m.stage2_prompts, "generation": m.stage2_generation, "seed": config.seed, "reps": reps}
    return run.stage("generate2", inputs, compute, depends_on=["score", *(f"stage1/{t}" for t in reps)], ranks="all")


def select2_stage(config: RunConfig, run: Run, grid: PreferenceGrid) -> Path:
    """Stage ``select2``: Pareto layers of the generated data, k/2 nearest per ray (offline normalisation)."""
    from moalign.data import load_scored

    m: ParetoHqDConfig = config.method
    k2 = m.stage2_k if m.stage2_k is not None else m.k // 2
    layers = m.stage2_num_layers or m.num_layers
    min_hq_size = m.min_hq_size * k2 // max(m.k, 1)  # the same multiple of k as in stage 1

    def compute(out: Path) -> None:
        data = load_scored(run.stage_dir("generate2") / GENERATED_FILE, objectives=list(config.task.objectives))
        if len(data) == 0:
            raise RuntimeError("ParetoHqD stage 2: every generated response was empty; nothing to select")
        scores = _normalise(data.scores, _load_stats(run.stage_dir("select")))
        selection = _select(scores, data.prompts, grid.points, m, k=k2, num_layers=layers, min_hq_size=min_hq_size)
        _write_selection(out, selection, grid.tags, k2)

    inputs = {"k2": k2, "layers": layers, "min_hq_size": min_hq_size, "grid": grid.points.tolist(),
              "max_per_prompt": m.max_per_prompt}
    return run.stage("select2", inputs, compute, depends_on=["generate2", "select"])


def stage2(config: RunConfig, run: Run, tags: list[str]) -> dict[str, Path]:
    """Each preference's stage-1 model, fine-tuned further on its stage-2 rows."""
    from moalign.data import load_scored

    m: ParetoHqDConfig = config.method
    data = load_scored(run.stage_dir("generate2") / GENERATED_FILE, objectives=list(config.task.objectives))
    selected = json.loads((run.stage_dir("select2") / SELECTION_FILE).read_text())["indices"]
    settings = m.stage2_train or m.train
    out = {}
    for tag, index in zip(tags, selected):
        start = run.stage_dir(f"stage1/{tag}")
        if not index:  # nothing new near this ray: the stage-1 model stands
            print(f"[paretohqd] stage 2: no generated point for {tag}; keeping its stage-1 model")
            out[tag] = start
            continue
        deps = ["select2", f"stage1/{tag}"]
        out[tag] = _train_stage(config, run, f"stage2/{tag}", data, index, str(start), settings, deps)
    return out


def train(config: RunConfig, run: Run):
    """Run every ParetoHqD stage (finished ones are skipped) and return the per-preference family."""
    from moalign.eval.family import CheckpointFamily

    m: ParetoHqDConfig = config.method
    grid = training_grid(config, m.grid)
    tags = grid.tags
    rewards = LazyRewards.for_task(config.task)
    score_offline_stage(config, run, rewards, m.scores_from)
    select_stage(config, run, grid)
    final = stage1(config, run, tags)
    if m.stage2:
        generate2_stage(config, run, grid, rewards)
        select2_stage(config, run, grid)
        final = stage2(config, run, tags)
    checkpoints = {tuple(float(x) for x in w): str(final[tag].resolve()) for w, tag in zip(grid.points, tags)}
    return CheckpointFamily("paretohqd", checkpoints)
