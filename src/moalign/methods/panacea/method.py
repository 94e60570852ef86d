"""Panacea's stages: pairs -> (reference cache) -> train/panacea-<aggregation> (DPO) or
train/panacea-sft-<aggregation> (SFT); (eval/stats with zscore ->) train/panacea-rlhf-ls (RLHF, online GRPO);
the family is the one model."""

from __future__ import annotations

from pathlib import Path

from moalign.config import RunConfig
from moalign.data.io import load_pairs
from moalign.io_utils import atomic_write_json
from moalign.methods.panacea.config import PanaceaConfig
from moalign.methods.panacea.family import PanaceaFamily
from moalign.methods.panacea.training import aggregation_weighting, objective_loss_fn, sft_responses
from moalign.methods.preference_data import (
    PAIRS_FILE,
    cached_reference,
    load_pairsets,
    pairs_stage,
    reference_columns,
)
from moalign.methods.stages import training_stage
from moalign.models.adapters import SVDLoraAdapter
from moalign.models.svd_lora import SVDLoraSpec, set_preference
from moalign.pipeline import Run
from moalign.train.schedule import PreferenceSchedule

RESPONSES_INFO = "responses_info.json"


def schedule_of(method: PanaceaConfig, seed: int) -> PreferenceSchedule:
    """A fresh lambda from the simplex every step (or every pair): Algorithm 1's draw."""
    return PreferenceSchedule(kind="dirichlet", alpha=method.dirichlet_alpha, per_sample=method.per_sample, seed=seed)


PREFIXES = {"dpo": "panacea", "sft": "panacea-sft", "rlhf": "panacea-rlhf"}
ONLINE_FIELDS = {"grpo", "reward_scale", "max_prompts"}  # the rlhf variant's own


def stage_name(method: PanaceaConfig) -> str:
    return f"train/{PREFIXES[method.variant]}-{method.aggregation}"


def train_panacea(config: RunConfig, run: Run) -> PanaceaFamily:
    """One SVD-LoRA model trained on every objective's loss (DPO or NLL) or on the reward lambda . r (RLHF) at
    random preferences."""
    method: PanaceaConfig = config.method
    objectives = list(config.task.objectives)
    method.check_run(config)
    if method.variant == "rlhf":
        folder = _rlhf_stage(config, run)
        return PanaceaFamily(folder, len(objectives), name=f"panacea-rlhf-{method.aggregation}")
    pairs_dir = pairs_stage(config, run, method.pairs)
    common = {"loss_fn": objective_loss_fn(method), "weighting": aggregation_weighting(method),
              "schedule": schedule_of(method, config.seed), "model_hook": set_preference,
              "adapter": SVDLoraAdapter(SVDLoraSpec(len(objectives), init=method.init)),
              "settings": method.train, "seed": config.seed}
    if method.variant == "sft":
        train, depends = _sft_training(config, pairs_dir, common), ["pairs"]
    else:
        ref_stage = cached_reference(config, run, method.reference, method.train.max_length)
        train, depends = _dpo_training(config, run, pairs_dir, ref_stage, common), ["pairs"] + ([ref_stage] if ref_stage else [])
    inputs = {"model": config.model, "method": _hashed_fields(method), "seed": config.seed}
    folder = training_stage(run, stage_name(method), inputs, train, depends)
    return PanaceaFamily(folder, len(objectives), name=f"{PREFIXES[method.variant]}-{method.aggregation}")


def _hashed_fields(method: PanaceaConfig) -> dict:
    """The method fields the training stage depends on (the pairs have their own stage; the other variants'
    fields change nothing here, so the dpo and sft hashes are those from before the rlhf variant existed)."""
    if method.variant == "rlhf":
        unused = {"pairs", "beta", "reference", "nll_normalisation", "tche_z", "per_sample"}
    else:
        unused = ({"pairs", "nll_normalisation"} if method.variant == "dpo" else {"pairs", "beta", "reference"})
        unused |= ONLINE_FIELDS
    return {k: v for k, v in vars(method).items() if k not in unused}


def _rlhf_stage(config: RunConfig, run: Run) -> Path:
    """Stage ``train/panacea-rlhf-ls``: GRPO on the task's train prompts with lambda . r, lambda drawn per
    generation batch and written into the SVD-LoRA (:mod:`moalign.train.online`); rewards, prompts and the
    z-scoring are MORLHF's."""
    from functools import partial

    from moalign.eval.generate import cut_at_stop_strings
    from moalign.methods.morlhf import reward_zscore, train_prompts
    from moalign.rewards.lazy import LazyRewards

    method: PanaceaConfig = config.method
    objectives = list(config.task.objectives)
    rewards = LazyRewards.for_task(config.task)
    stats, depends = reward_zscore(config, run, rewards)
    stops = list(config.eval.generation.stop_strings)

    def train(ckpt_dir: Path, out_dir: Path) -> None:
        from moalign.train.online import train_online

        train_online(config.model.name_or_path, train_prompts(config), rewards(), schedule_of(method, config.seed),
                     method.grpo, method.train, out_dir, seed=config.seed, checkpoint_dir=ckpt_dir,
                     objectives=objectives, zscore=stats() if stats else None, model_config=config.model,
                     clean=partial(cut_at_stop_strings, stop_strings=stops),
                     adapter=SVDLoraAdapter(SVDLoraSpec(len(objectives), init=method.init)), model_hook=set_preference)

    inputs = {"model": config.model, "task": config.task, "rewards": rewards.identity,
              "method": _hashed_fields(method), "stop_strings": stops, "seed": config.seed}
    return training_stage(run, stage_name(method), inputs, train, depends)


def _dpo_training(config: RunConfig, run: Run, pairs_dir: Path, ref_stage: str | None, common: dict):
    from moalign.train.preference_run import train_preference

    objectives = list(config.task.objectives)

    def train(ckpt_dir, out_dir):
        train_preference(config.model, load_pairsets(pairs_dir, objectives), save_dir=out_dir,
                         checkpoint_dir=ckpt_dir, reference=config.method.reference,
                         columns=reference_columns(run, ref_stage, objectives), **common)

    return train


def _sft_training(config: RunConfig, pairs_dir: Path, common: dict):
    from moalign.train.preference_run import train_responses

    objectives = list(config.task.objectives)

    def train(ckpt_dir, out_dir):
        responses = sft_responses(load_pairs(pairs_dir / PAIRS_FILE), objectives)
        train_responses(config.model, responses, save_dir=out_dir, checkpoint_dir=ckpt_dir, **common)
        atomic_write_json(out_dir / RESPONSES_INFO, {name: len(r) for name, r in responses.items()})

    return train
