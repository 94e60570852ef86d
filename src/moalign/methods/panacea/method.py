"""Panacea's stages: pairs -> (reference cache) -> train/panacea-<aggregation>; the family is the one model."""

from __future__ import annotations

from moalign.config import RunConfig
from moalign.methods.panacea.config import PanaceaConfig
from moalign.methods.panacea.family import PanaceaFamily
from moalign.methods.panacea.training import aggregation_weighting, embed_preference
from moalign.methods.preference_data import cached_reference, load_pairsets, pairs_stage, reference_columns
from moalign.methods.stages import training_stage
from moalign.models.adapters import SVDLoraAdapter
from moalign.models.svd_lora import SVDLoraSpec
from moalign.pipeline import Run
from moalign.train.losses import dpo_pair_loss
from moalign.train.schedule import PreferenceSchedule


def schedule_of(method: PanaceaConfig, seed: int) -> PreferenceSchedule:
    """A fresh lambda from the simplex every step (or every pair): Algorithm 1's draw."""
    return PreferenceSchedule(kind="dirichlet", alpha=method.dirichlet_alpha, per_sample=method.per_sample, seed=seed)


def train_panacea(config: RunConfig, run: Run) -> PanaceaFamily:
    """One SVD-LoRA model trained on every objective's DPO loss at random preferences."""
    from moalign.train.preference_run import train_preference

    method: PanaceaConfig = config.method
    objectives = list(config.task.objectives)
    method.check_run(config)
    pairs_dir = pairs_stage(config, run, method.pairs)
    ref_stage = cached_reference(config, run, method.reference, method.train.max_length)
    adapter = SVDLoraAdapter(SVDLoraSpec(len(objectives), init=method.init))

    def train(ckpt_dir, out_dir):
        train_preference(
            config.model, load_pairsets(pairs_dir, objectives), save_dir=out_dir, checkpoint_dir=ckpt_dir,
            loss_fn=dpo_pair_loss(method.beta), weighting=aggregation_weighting(method),
            schedule=schedule_of(method, config.seed), model_hook=embed_preference, adapter=adapter,
            settings=method.train, seed=config.seed, reference=method.reference,
            columns=reference_columns(run, ref_stage, objectives),
        )

    inputs = {"model": config.model, "method": {k: v for k, v in vars(method).items() if k != "pairs"},
              "seed": config.seed}
    depends = ["pairs"] + ([ref_stage] if ref_stage else [])
    folder = training_stage(run, f"train/panacea-{method.aggregation}", inputs, train, depends)
    return PanaceaFamily(folder, len(objectives), name=f"panacea-{method.aggregation}")
