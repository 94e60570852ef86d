"""SIPO's stages, each resumable: a run killed between any two resumes at the next.

    pairs -> reference -> train/w=1.00,0.00, train/w=0.00,1.00      the first-round DPO experts (``dpo``'s own)
    sipo/conflicts                                                  the conflicting comparisons (prompt, a, b)
    sipo/round<r>/sample/a=<a>       per sample weight a           MOD responses at w = (a, 1 - a)
    sipo/round<r>/refine/a=<a>       per a, with method.review     the review and the MOD rewrite
    sipo/round<r>/scores                                            every text under every reward model
    sipo/round<r>/select                                            survivors and the new pairs (+ counts)
    sipo/round<r>/merged/<objective> (round 1)                      the expert merged into its base
    sipo/round<r>/train/<objective>                                 a new LoRA: DPO + alpha * NLL on the new pairs
    sipo/round<r>/expert/<objective>                                the re-aligned model, merged: the next expert

The family is MOD over the last round's experts. Later rounds sample from, score with and re-align the
previous round's (full) experts; the implicit rewards always take the task's base model as reference.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from moalign import distributed
from moalign.config import RunConfig
from moalign.console import echo
from moalign.data.io import load_pairs, save_pairs
from moalign.data.pairs import conflict_mask, count_conflicts, subset_pairs
from moalign.data.schema import PairSet
from moalign.eval.rows import read_rows, write_rows
from moalign.io_utils import atomic_write_json
from moalign.methods.dpo_lw import train_dpo
from moalign.methods.mod import MODFamily
from moalign.methods.preference_data import PAIRS_FILE, pairs_stage
from moalign.methods.sipo.candidates import (
    fill,
    implicit_reward_table,
    keep_rewrite,
    mod_responses,
    pair_weight,
)
from moalign.methods.sipo.config import SIPOConfig
from moalign.methods.sipo.select import pareto_survivor, survivor_pairs
from moalign.methods.stages import training_stage
from moalign.pipeline import Run

CONFLICTS_FILE = "conflicts.jsonl"
ROWS_FILE = "rows.jsonl"
SCORES_FILE = "scores.npz"
INFO_FILE = "info.json"


def train_sipo(config: RunConfig, run: Run) -> MODFamily:
    """First-round experts, then ``method.iterations`` rounds of sample -> (refine) -> score -> select ->
    re-align; returns MOD over the last round's experts."""
    method: SIPOConfig = config.method
    method.check_run(config)
    dpo = dataclasses.replace(config, method=method.experts)
    first = train_dpo(dpo, run)
    experts = [_stage_of(run, first.checkpoint_for(e)) for e in np.eye(2)]
    conflicts = conflicts_stage(config, run)
    for r in range(1, method.iterations + 1):
        realigned = sipo_round(config, run, r, experts, conflicts)
        if realigned == experts:  # nothing survived this round: another would sample the same candidates
            break
        experts = realigned
    return method.decoding.family([run.stage_dir(e) for e in experts], dtype=config.model.dtype, name="sipo")


def _stage_of(run: Run, folder) -> str:
    return Path(folder).relative_to(run.root).as_posix()


def conflicts_stage(config: RunConfig, run: Run) -> str:
    """Stage ``sipo/conflicts``: the comparisons the two objectives decide differently, oriented as the
    first objective chose (so its ``rejected`` is the second objective's choice); the first
    ``max_conflicts`` of them in the pairs' order (official BeaverTails: the first 2500)."""
    method: SIPOConfig = config.method
    objectives = list(config.task.objectives)
    pairs_dir = pairs_stage(config, run, method.experts.pairs)

    def compute(out: Path) -> None:
        pairs = load_pairs(pairs_dir / PAIRS_FILE)
        mask = conflict_mask(pairs, objectives) & (np.asarray(pairs.objective) == objectives[0])
        index = np.flatnonzero(mask)[: method.max_conflicts]
        chosen = subset_pairs(pairs, index)
        save_pairs(chosen, out / CONFLICTS_FILE)
        atomic_write_json(out / INFO_FILE, {"pairs": len(pairs), "conflicting_comparisons": count_conflicts(pairs, objectives),
                                            "used": len(chosen)})

    name = "sipo/conflicts"
    run.stage(name, {"max_conflicts": method.max_conflicts, "objectives": objectives}, compute, depends_on=["pairs"])
    return name


def sipo_round(config: RunConfig, run: Run, r: int, experts: list[str], conflicts: str) -> list[str]:
    """One SIPO round from the expert stages ``experts``; returns the new experts' stage names."""
    method: SIPOConfig = config.method
    prefix = f"sipo/round{r}"
    # one MOD family for the round's samples and rewrites: its experts load once, on the first stage that decodes
    family = method.decoding.family([run.stage_dir(e) for e in experts], dtype=config.model.dtype,
                                    name=f"sipo-round{r}")
    samples = [sample_stage(config, run, f"{prefix}/sample/a={a:.2f}", a, experts, family, conflicts)
               for a in method.sample_weights]
    refined = [refine_stage(config, run, f"{prefix}/refine/a={a:.2f}", a, experts, family, s)
               for a, s in zip(method.sample_weights, samples)] if method.review.objective else []
    del family  # its models are freed before the scores load theirs
    scores = scores_stage(config, run, f"{prefix}/scores", experts, [conflicts, *samples, *refined])
    select = select_stage(config, run, f"{prefix}/select", conflicts, samples, refined, scores)
    survivors = json.loads((run.stage_dir(select) / INFO_FILE).read_text(encoding="utf-8"))["survivors"]
    if survivors == 0 and r == 1:
        raise ValueError(_no_survivor_message(method))
    if survivors == 0:
        echo(f"[{prefix}] no candidate survived the filter: SIPO stops after round {r - 1}, its experts stand")
        return experts
    return [realign(config, run, prefix, k, experts[k], select) for k in range(2)]


def sample_stage(config: RunConfig, run: Run, name: str, a: float, experts: list[str], family: MODFamily,
                 conflicts: str) -> str:
    """MOD's greedy (by default) response to each conflicting prompt at w = (a, 1 - a)."""
    method: SIPOConfig = config.method

    def compute(out: Path) -> None:
        prompts = load_pairs(run.stage_dir(conflicts) / CONFLICTS_FILE).prompts
        texts = mod_responses(family, pair_weight(a), prompts, method.sampling, seed=config.seed)
        if texts is None:  # another rank of a launch: it decoded its share
            return
        write_rows(out / ROWS_FILE, ({"index": i, "prompt": p, "response": t} for i, (p, t) in enumerate(zip(prompts, texts))))

    inputs = {"a": a, "decoding": method.decoding, "sampling": method.sampling, "seed": config.seed,
              "dtype": config.model.dtype}
    run.stage(name, inputs, compute, depends_on=[*experts, conflicts], ranks="all")
    return name


def refine_stage(config: RunConfig, run: Run, name: str, a: float, experts: list[str], family: MODFamily,
                 sample: str) -> str:
    """The review of each sample (by ``review.objective``'s expert alone) and its rewrite by MOD at the
    sample's own w; rows keep the review, the rewrite and the prompts the model saw."""
    method: SIPOConfig = config.method
    review, objectives = method.review, list(config.task.objectives)
    goal = review.goal or f"better in {' and '.join(objectives)}"

    def compute(out: Path) -> None:
        rows = read_rows(run.stage_dir(sample) / ROWS_FILE)
        asks = [fill(review.review_template, goal, prompt=row["prompt"], response=row["response"]) for row in rows]
        reviewer = np.eye(2)[objectives.index(review.objective)]
        reviews = distributed.from_main(mod_responses(family, reviewer, asks, review.review_generation,
                                                      seed=config.seed))
        rewrites_in = [fill(review.rewrite_template, goal, prompt=row["prompt"], response=row["response"], review=v.strip())
                       for row, v in zip(rows, reviews)]
        rewrites = mod_responses(family, pair_weight(a), rewrites_in, review.rewrite_generation, seed=config.seed)
        if rewrites is None:  # another rank of a launch
            return
        write_rows(out / ROWS_FILE, ({**row, "review": v, "rewrite": t.strip(), "review_prompt": q, "rewrite_prompt": p}
                                     for row, v, t, q, p in zip(rows, reviews, rewrites, asks, rewrites_in)))

    inputs = {"a": a, "review": review, "goal": goal, "decoding": method.decoding, "seed": config.seed,
              "dtype": config.model.dtype}
    run.stage(name, inputs, compute, depends_on=[*experts, sample], ranks="all")
    return name


def _texts_of(run: Run, stages: list[str]) -> list[tuple[str, str]]:
    """Every distinct (prompt, response) the filter compares: the conflicts' two sides, the samples, the rewrites."""
    seen: dict[tuple[str, str], None] = {}
    for stage in stages:
        folder = run.stage_dir(stage)
        if (folder / CONFLICTS_FILE).is_file():
            pairs = load_pairs(folder / CONFLICTS_FILE)
            for p, c, j in zip(pairs.prompts, pairs.chosen, pairs.rejected):
                seen.update({(p, c): None, (p, j): None})
            continue
        for row in read_rows(folder / ROWS_FILE):
            seen[(row["prompt"], row["response"])] = None
            if "rewrite" in row:
                seen[(row["prompt"], row["rewrite"])] = None
    return list(seen)


def scores_stage(config: RunConfig, run: Run, name: str, experts: list[str], inputs_from: list[str]) -> str:
    """Every distinct text under every reward model: ``scores.npz`` (``prompts``, ``responses``, ``scores``
    (n, R), ``columns``). Implicit: the two experts, then their soups at ``soup_weights``; explicit: the
    task's reward models. Every rank of a launch scores its share of the texts."""
    method: SIPOConfig = config.method
    soup_weights = method.sample_weights if method.soup_weights is None else method.soup_weights

    def compute(out: Path) -> None:
        texts = _texts_of(run, inputs_from)
        prompts, responses = [p for p, _ in texts], [t for _, t in texts]
        if method.scorer == "explicit":
            from moalign.rewards.lazy import LazyRewards

            table = LazyRewards.for_task(config.task).score(prompts, responses, sharded=True)
            columns = list(config.task.objectives)
        else:
            table = implicit_reward_table([run.stage_dir(e) for e in experts], soup_weights, config.model, prompts,
                                          responses, beta=method.implicit_beta,
                                          max_length=method.realign.train.max_length, sharded=True)
            columns = [f"expert:{o}" for o in config.task.objectives] + [f"soup:a={a:.2f}" for a in soup_weights]
        if table is None:  # another rank of a launch: it scored its share, the main rank writes
            return
        np.savez(out / SCORES_FILE, prompts=np.array(prompts, dtype=object), responses=np.array(responses, dtype=object),
                 scores=np.asarray(table, dtype=np.float64), columns=np.array(columns))

    inputs: dict = {"scorer": method.scorer, "dtype": config.model.dtype}
    if method.scorer == "explicit":
        from moalign.rewards.lazy import LazyRewards

        inputs["rewards"] = LazyRewards.for_task(config.task).identity
    else:
        inputs.update(soup_weights=list(soup_weights), beta=method.implicit_beta,
                      max_length=method.realign.train.max_length, model=config.model)
    run.stage(name, inputs, compute, depends_on=[*experts, *inputs_from], ranks="all")
    return name


def load_scores(folder: Path) -> dict[tuple[str, str], np.ndarray]:
    with np.load(folder / SCORES_FILE, allow_pickle=True) as data:  # our own file: object arrays of strings
        return {(p, t): row for p, t, row in zip(data["prompts"], data["responses"], data["scores"])}


def select_stage(config: RunConfig, run: Run, name: str, conflicts: str, samples: list[str], refined: list[str],
                 scores: str) -> str:
    """The Pareto filter per conflicting comparison, and its new pairs (``pairs.jsonl``); ``info.json``
    counts the comparisons, the rewrites kept and the survivors (per sample weight too)."""
    method: SIPOConfig = config.method
    objectives = list(config.task.objectives)

    def compute(out: Path) -> None:
        pairs = load_pairs(run.stage_dir(conflicts) / CONFLICTS_FILE)
        table = load_scores(run.stage_dir(scores))
        candidates, kept = _candidates(run, samples, refined, table, len(pairs), method.sample_weights)
        new, survived, rows = [], [0] * len(samples), []
        for i, (p, c, j) in enumerate(zip(pairs.prompts, pairs.chosen, pairs.rejected)):
            texts = candidates[i]
            best = pareto_survivor(np.stack([table[(p, t)] for t in texts]), table[(p, c)], table[(p, j)])
            rows.append({"index": i, "prompt": p, "survivor": None if best is None else texts[best],
                         "from_weight": None if best is None else method.sample_weights[best]})
            if best is not None:
                survived[best] += 1
                new.append(survivor_pairs(p, texts[best], c, j, objectives, pair_id=pairs.ids[i]))
        save_pairs(_joined(new) if new else PairSet([], [], [], []), out / PAIRS_FILE)
        write_rows(out / ROWS_FILE, rows)
        info = {"conflicts": len(pairs), "survivors": sum(survived), "new_pairs": 2 * len(objectives) * sum(survived),
                "survivors_by_weight": {f"{a:.2f}": n for a, n in zip(method.sample_weights, survived)},
                "rewrites_kept": kept, "scorer": method.scorer}
        atomic_write_json(out / INFO_FILE, info)
        echo(f"[{name}] {info['survivors']} of {len(pairs)} conflicting comparisons have a Pareto-better candidate"
             + (f"; {sum(kept.values())} rewrites kept" if kept else ""))

    run.stage(name, {"sample_weights": list(method.sample_weights)}, compute,
              depends_on=[conflicts, *samples, *refined, scores])
    return name


def _candidates(run: Run, samples: list[str], refined: list[str], table, n: int, weights: list[float]):
    """Per comparison, one candidate per sample weight: the MOD sample, or its rewrite when the rewrite is
    not weakly dominated under the experts' rewards (the first two score columns); and the count of kept
    rewrites per sample weight."""
    sources = refined or samples
    per_weight = [read_rows(run.stage_dir(s) / ROWS_FILE) for s in sources]
    candidates: list[list[str]] = [[] for _ in range(n)]
    kept: dict[str, int] = {}
    for a, rows in zip(weights, per_weight, strict=True):
        count = 0
        for row in rows:
            text = row["response"]
            if "rewrite" in row and keep_rewrite(table[(row["prompt"], text)][:2], table[(row["prompt"], row["rewrite"])][:2]):
                text, count = row["rewrite"], count + 1
            candidates[row["index"]].append(text)
        if refined:
            kept[f"{a:.2f}"] = count
    return candidates, kept


def _joined(sets: list[PairSet]) -> PairSet:
    return PairSet(*([x for s in sets for x in getattr(s, f)] for f in ("prompts", "chosen", "rejected", "objective")),
                   ids=[x for s in sets for x in s.ids])


def _no_survivor_message(method: SIPOConfig) -> str:
    return ("SIPO: none of the conflicting comparisons has a candidate that beats both of its responses "
            f"under every reward model ({method.scorer} scorer), so there is nothing to re-align on. Try more "
            "conflicts (method.max_conflicts), other method.sample_weights, fewer soup rewards "
            f"(method.soup_weights), method.scorer={'explicit' if method.scorer == 'implicit' else 'implicit'}, "
            "or stronger first-round experts")


def realign(config: RunConfig, run: Run, prefix: str, k: int, expert: str, select: str) -> str:
    """Objective k's re-alignment: a new LoRA on its merged expert (also the reference), trained on the new
    pairs with DPO + alpha * NLL; returns the stage of the re-aligned model merged (the next round's expert)."""
    from moalign.train.losses import dpo_nll_pair_loss
    from moalign.train.preference_run import train_preference
    from moalign.train.weighting import FixedWeights

    settings = config.method.realign
    objective = config.task.objectives[k]
    start = expert if not is_adapter_stage(run, expert) else merge_stage(config, run, f"{prefix}/merged/{objective}", expert)
    start_model = dataclasses.replace(config.model, name_or_path=str(run.stage_dir(start)), revision=None)

    def train(ckpt_dir: Path, out_dir: Path) -> None:
        pairs = load_pairs(run.stage_dir(select) / PAIRS_FILE).for_objective(objective)
        train_preference(start_model, {objective: pairs}, save_dir=out_dir, checkpoint_dir=ckpt_dir,
                         loss_fn=dpo_nll_pair_loss(settings.beta, settings.alpha, length=settings.nll_length),
                         weighting=FixedWeights(np.ones(1)), settings=settings.train, seed=config.seed,
                         reference="precomputed")

    name = f"{prefix}/train/{objective}"
    inputs = {"realign": settings, "objective": objective, "seed": config.seed, "dtype": config.model.dtype}
    training_stage(run, name, inputs, train, depends_on=[start, select])
    return merge_stage(config, run, f"{prefix}/expert/{objective}", name)


def is_adapter_stage(run: Run, stage: str) -> bool:
    from moalign.models.load import is_adapter_dir

    return is_adapter_dir(run.stage_dir(stage))


def merge_stage(config: RunConfig, run: Run, name: str, source: str) -> str:
    """Stage ``name``: the LoRA adapter saved by stage ``source`` merged into its base, saved as a full model
    (safetensors) with its tokenizer."""
    from moalign.models.load import load_policy

    def compute(out: Path) -> None:
        model, tokenizer = load_policy(run.stage_dir(source), dtype=config.model.dtype,
                                       trust_remote_code=config.model.trust_remote_code)
        model.merge_and_unload().save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)

    run.stage(name, {"dtype": config.model.dtype}, compute, depends_on=[source])
    return name
