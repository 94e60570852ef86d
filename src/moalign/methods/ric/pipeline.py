"""Rewards-in-Context's stages (spec sections 1 and 11), each resumable inside the run directory:

``score`` (raw scores of every offline response, chosen and rejected) -> ``offline`` (RiC statistics; the
conditional SFT model; the reward tokens are plain text unless ``add_score_tokens``) -> for i = 1..iterations: ``online/iter{i}-data`` (MORS goals,
generation, scoring with the offline statistics, any-objective quantile filter) and ``online/iter{i}-train``
(offline samples that pass the filter + every kept online sample so far; training continues).

The result is a :class:`~moalign.methods.ric.family.RicFamily`: one model, conditioned per preference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moalign import distributed
from moalign.config import RunConfig
from moalign.data.prompts import sample_prompts
from moalign.eval.generate import generate_from_dir
from moalign.io_utils import atomic_write_json
from moalign.methods.offline_data import load_offline, score_offline_stage
from moalign.methods.ric.conditioning import (
    any_quantile_mask,
    condition_prompt,
    gaussian_range,
    is_bad_sample,
    mors_targets,
    reference_ranges,
    score_tokens,
)
from moalign.methods.ric.config import RicConfig
from moalign.methods.ric.family import RicFamily
from moalign.methods.stages import training_stage
from moalign.pipeline import Run
from moalign.rewards.lazy import LazyRewards

STATS_FILE = "ric_stats.json"
SAMPLES_FILE = "samples.jsonl"


def _conditioned(prompts, labels, m: RicConfig, online: bool = False) -> list[str]:
    return [condition_prompt(p, s, m.assistant_tag, m.prompt_style, online=online) for p, s in zip(prompts, labels)]


def offline_labels(run: Run, objectives) -> tuple:
    """(offline ScoredSet with raw scores, RiC statistics, labels): the labels are RiC's *unrounded* z-scores
    of the rounded raw scores; RiC keeps them unrounded (its quantile filter reads them so) and rounds only
    when writing them into the prompt."""
    from moalign.rewards.normalize import ZScore, ric_normalize

    data = load_offline(run.stage_dir("score"), objectives)
    stats = ZScore.load(run.stage_dir("offline") / STATS_FILE, objectives=list(objectives))
    return data, stats, ric_normalize(data.scores, stats, round_z=False)


def score_token_ids(tokenizer, k: int, add: bool) -> list[int] | None:
    """With ``add``: the reward tokens join the vocabulary (new embedding rows; their ids are returned so LoRA
    can train them). Without (RiC): ``<rm1_score>`` stays plain text for the tokenizer; returns None."""
    if not add:
        return None
    tokens = score_tokens(k)
    added = tokenizer.add_tokens(tokens)
    return tokenizer.convert_tokens_to_ids(tokens) if added else None


def offline_stage(config: RunConfig, run: Run) -> Path:
    """Stage ``offline``: fit RiC's statistics; conditional SFT of the base model on the conditioned prompts."""
    from moalign.models.load import load_tokenizer
    from moalign.rewards.normalize import fit_ric_stats, ric_normalize
    from moalign.train.sft import train_sft

    m: RicConfig = config.method
    objectives = list(config.task.objectives)

    def compute(checkpoints: Path, out: Path) -> None:
        data = load_offline(run.stage_dir("score"), objectives)
        stats = fit_ric_stats(data.scores, objectives)
        stats.save(out / STATS_FILE)
        labels = ric_normalize(data.scores, stats, round_z=False)
        tokenizer = load_tokenizer(config.model.name_or_path, config.model.revision, config.model.trust_remote_code)
        new_ids = score_token_ids(tokenizer, len(objectives), m.add_score_tokens)
        train_sft(
            config.model.name_or_path, _conditioned(data.prompts, labels, m), data.responses, m.train, out,
            seed=config.seed, checkpoint_dir=checkpoints, tokenizer=tokenizer, model_config=config.model,
            trainable_token_ids=new_ids,
        )

    inputs = {"train": m.train, "model": config.model, "seed": config.seed, "tag": m.assistant_tag,
              "style": m.prompt_style, "add_score_tokens": m.add_score_tokens}
    return training_stage(run, "offline", inputs, compute, depends_on=["score"])


def _model_stage(i: int) -> str:
    return "offline" if i == 0 else f"online/iter{i}-train"


def online_data_stage(config: RunConfig, run: Run, i: int, rewards: LazyRewards) -> Path:
    """Stage ``online/iter{i}-data``: MORS goals -> generate -> score (offline stats) -> keep any >= quantile."""
    from moalign.data import save_scored
    from moalign.data.schema import ScoredSet
    from moalign.rewards.normalize import ric_normalize

    m: RicConfig = config.method
    on = m.online
    objectives = list(config.task.objectives)

    def compute(out: Path) -> None:
        data, stats, _ = offline_labels(run, objectives)
        seed = on.seed + i
        prompts = sample_prompts(data.prompts, on.num_prompts, seed, replace=True)
        low, high = gaussian_range(on.target_draws, seed)
        goals = mors_targets(len(prompts), len(objectives), low, high, np.random.default_rng(seed))
        texts = generate_from_dir(run.stage_dir(_model_stage(i - 1)), _conditioned(prompts, goals, m), on.generation,
                                  seed, model_config=config.model, sharded=True)
        texts = distributed.from_main(texts)  # every rank decoded its share; each scores its share too
        keep = [j for j, t in enumerate(texts) if t.strip() and not is_bad_sample(t)]
        kept_p, kept_r = [prompts[j] for j in keep], [texts[j] for j in keep]
        raw = rewards.score(kept_p, kept_r, sharded=True)
        if raw is None:  # another rank of a launch: the main rank writes the stage
            return
        labels = ric_normalize(raw, stats, round_raw=False)
        mask = any_quantile_mask(labels, on.quantile) if len(keep) else np.zeros(0, dtype=bool)
        idx = np.flatnonzero(mask)
        chosen = ScoredSet([kept_p[j] for j in idx], [kept_r[j] for j in idx], labels[idx], objectives)
        save_scored(chosen, out / SAMPLES_FILE)
        atomic_write_json(out / "summary.json", {"generated": len(texts), "clean": len(keep), "kept": int(idx.size),
                                                 "goal_range": [low, high]})

    inputs = {"online": on, "tag": m.assistant_tag, "style": m.prompt_style, "iteration": i}
    return run.stage(f"online/iter{i}-data", inputs, compute, depends_on=[_model_stage(i - 1), "offline"],
                     ranks="all")


def online_train_stage(config: RunConfig, run: Run, i: int) -> Path:
    """Stage ``online/iter{i}-train``: filtered offline samples + all kept online samples; continue training."""
    from moalign.data import load_scored
    from moalign.train.sft import train_sft

    m: RicConfig = config.method
    on = m.online
    objectives = list(config.task.objectives)
    data_stages = [f"online/iter{j}-data" for j in range(1, i + 1)]

    def compute(checkpoints: Path, out: Path) -> None:
        data, _, labels = offline_labels(run, objectives)
        passing = np.flatnonzero(any_quantile_mask(labels, on.quantile))
        pick = np.random.default_rng(on.seed + i).permutation(passing)[: on.offline_mix]
        texts = _conditioned([data.prompts[j] for j in pick], labels[pick], m)
        responses = [data.responses[j] for j in pick]
        for name in data_stages:  # online data accumulates across iterations
            online = load_scored(run.stage_dir(name) / SAMPLES_FILE, objectives=objectives)
            texts += _conditioned(online.prompts, online.scores, m, online=True)
            responses += online.responses
        train_sft(
            run.stage_dir(_model_stage(i - 1)), texts, responses,
            on.train, out, seed=on.seed + i, checkpoint_dir=checkpoints, model_config=config.model,
        )

    inputs = {"online": on, "iteration": i, "tag": m.assistant_tag, "style": m.prompt_style}
    return training_stage(run, f"online/iter{i}-train", inputs, compute, depends_on=[*data_stages, _model_stage(i - 1)])


def target_range(config: RunConfig, run: Run) -> tuple[list[float], list[float]]:
    """Per-objective (low, high) of the inference mapping, as configured: ``gaussian`` is RiC's evaluation rule
    (each objective's own N(0,1) sample, unrounded min and max; :func:`reference_ranges`)."""
    m: RicConfig = config.method
    if m.target_range == "gaussian":
        return reference_ranges(len(config.task.objectives), m.reference_draws, m.reference_seed)
    if m.target_range == "data":
        _, _, labels = offline_labels(run, config.task.objectives)
        return labels.min(axis=0).tolist(), labels.max(axis=0).tolist()
    raise ValueError(f"RiC: method.target_range={m.target_range!r}; choose 'gaussian' or 'data'")


def train(config: RunConfig, run: Run) -> RicFamily:
    """Run every RiC stage (finished ones are skipped) and return the conditional family."""
    m: RicConfig = config.method
    rewards = LazyRewards.for_task(config.task)
    score_offline_stage(config, run, rewards, m.scores_from)
    offline_stage(config, run)
    for i in range(1, m.online.iterations + 1):
        online_data_stage(config, run, i, rewards)
        online_train_stage(config, run, i)
    low, high = target_range(config, run)
    final = run.stage_dir(_model_stage(m.online.iterations)).resolve()
    return RicFamily(final, m.mapping, low, high, assistant_tag=m.assistant_tag, prompt_style=m.prompt_style)
