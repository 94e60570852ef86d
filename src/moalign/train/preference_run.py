"""Build, train and save one preference model: what every DPO-family method calls once per model.

``build_preference_trainer`` loads the starting policy (a base model, a merged/full checkpoint folder or a
saved adapter, whose training then continues; a new adapter when the settings ask for one), tokenises the
per-objective pairs, attaches extra per-pair columns (MODPO margins), prepares the reference (precomputed
once by default, the fastest; or a chosen reference model) and returns a ready
:class:`MultiObjectivePreferenceTrainer`. ``train_preference`` trains it, resuming from the newest complete
checkpoint in ``checkpoint_dir``, and saves the model (or adapter) and the tokenizer plus ``history.jsonl``
(per-step losses, weights and preferences). ``build_response_trainer`` / ``train_responses`` do the same
for responses alone (Panacea's SFT variant: :class:`~moalign.train.multi_sft.MultiObjectiveSFTTrainer`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback, TrainingArguments, set_seed

from moalign.config import ModelConfig, TrainSettings
from moalign.console import attach_loss_lines
from moalign.data.schema import PairSet, ScoredSet
from moalign.models.adapters import LORA, Adapter, as_model_config, load_model, load_model_tokenizer
from moalign.train.args import check_sharding, training_kwargs
from moalign.train.checkpoints import last_complete_checkpoint
from moalign.train.collate import PreferenceDataset, build_preference_dataset, build_response_dataset
from moalign.train.multi_sft import MultiObjectiveSFTTrainer
from moalign.train.preference import MultiObjectivePreferenceTrainer
from moalign.train.reference import check_reference_mode, pad_id_of, precompute_reference
from moalign.train.saving import save_policy
from moalign.train.schedule import PreferenceSchedule
from moalign.train.weighting import ObjectiveWeighting

HISTORY_FILE = "history.jsonl"


def _reference_model(ref_model, start: ModelConfig, adapter: Adapter):
    """The frozen reference: a loaded module as given, a ModelConfig / name / folder loaded, or (None) a
    copy of the starting policy."""
    if isinstance(ref_model, torch.nn.Module):
        return ref_model
    return load_model(start if ref_model is None else as_model_config(ref_model), adapter)[0]


def _attach_columns(dataset: PreferenceDataset, columns: Mapping[str, Mapping[str, np.ndarray]] | None) -> None:
    for k, name in enumerate(dataset.objectives):
        for column, values in (columns or {}).get(name, {}).items():
            dataset.set_column(k, column, values)


def _prepare_reference(dataset, policy, tokenizer, *, reference: str, ref_model, start: ModelConfig, adapter):
    """The ref model the trainer runs (reference='model'), after filling the precomputed columns if needed.

    Precomputed without cached columns: from ``ref_model`` when given, else from the starting policy itself
    (a new adapter starts as the identity, so that is its base, run with the adapter off; a continued adapter
    is its own reference).
    """
    if reference == "adapter" and not adapter.is_attached(policy):
        raise ValueError("reference='adapter' needs an adapter on the policy (LoRA: train.lora.r > 0, or start "
                         "from a saved adapter); with full fine-tuning use 'precomputed' or 'model'")
    if reference == "model":
        return _reference_model(ref_model, start, adapter)
    if reference == "precomputed" and not dataset.has_column("ref_chosen"):
        ref = policy if ref_model is None else _reference_model(ref_model, start, adapter)
        if torch.cuda.is_available():
            policy.to("cuda")
            ref.to("cuda")
        # a new adapter is the identity at init: run its base (adapter off), which needs no preference set
        new_adapter = ref is policy and adapter.is_attached(policy) and not adapter.is_saved(start.name_or_path)
        precompute_reference(dataset, pad_id_of(tokenizer), policy=policy, ref_model=ref,
                             source="adapter" if new_adapter else "model", adapter=adapter)
    return None


def build_preference_trainer(
    model: ModelConfig | str,
    pairsets: Mapping[str, PairSet],
    *,
    loss_fn: Callable,
    settings: TrainSettings,
    output_dir: str | Path,
    seed: int,
    weighting: ObjectiveWeighting | None = None,
    schedule: PreferenceSchedule | None = None,
    model_hook: Callable | None = None,
    reference: str = "precomputed",
    ref_model=None,
    columns: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    adapter: Adapter = LORA,
    per_objective_gradients: bool | None = None,
    grad_layers: int = 0,
    training_overrides: Mapping | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> MultiObjectivePreferenceTrainer:
    """A ready-to-train trainer; ``columns[objective][name]`` are per-pair float columns for the loss.

    ``model``: the starting policy (a :class:`ModelConfig`, or a bare name / folder): a base model, a merged
    checkpoint, or a saved adapter folder (training continues that adapter; ``settings`` then add none). With
    ``reference="precomputed"`` the ``ref_chosen``/``ref_rejected`` columns are used when ``columns`` carries
    them (a run caches them once for every model it trains), else computed here. ``ref_model`` (a loaded
    module, a ModelConfig, a name or a folder; default: a copy of the starting policy) is the reference of
    ``"model"`` and, when given, of ``"precomputed"``; ``"adapter"`` runs the policy with its adapter off
    (the base). ``schedule``/``model_hook``: see :class:`MultiObjectivePreferenceTrainer`.
    ``training_overrides`` are extra ``TrainingArguments`` (e.g. ``optim``, ``save_total_limit``).
    """
    start = as_model_config(model)
    check_reference_mode(reference)
    policy, tokenizer, base_name = _starting_policy(start, adapter, settings, seed)
    dataset = build_preference_dataset(tokenizer, pairsets, settings.max_length, seed)
    _attach_columns(dataset, columns)
    ref = _prepare_reference(dataset, policy, tokenizer, reference=reference, ref_model=ref_model, start=start,
                             adapter=adapter)
    trainer = MultiObjectivePreferenceTrainer(
        model=policy, args=_training_args(settings, output_dir, seed, training_overrides), train_dataset=dataset,
        processing_class=tokenizer, callbacks=list(callbacks), loss_fn=loss_fn, weighting=weighting,
        schedule=schedule, model_hook=model_hook, reference=reference, ref_model=ref, adapter=adapter,
        per_objective_gradients=per_objective_gradients, grad_layers=grad_layers,
    )
    trainer.moalign_base_name = base_name  # saved adapters name the base as the caller gave it
    return attach_loss_lines(check_sharding(trainer))  # one formatted line per log once the CLI quieted the output


def _starting_policy(start: ModelConfig, adapter: Adapter, settings: TrainSettings, seed: int):
    """(trainable policy, tokenizer, base name): the model as given, with a new adapter when it has none."""
    set_seed(seed)  # a new adapter's weights are drawn from the seed
    policy, base_name = load_model(start, adapter, trainable=True)
    tokenizer = load_model_tokenizer(start, adapter)
    if not adapter.is_saved(start.name_or_path):
        policy = adapter.build(policy, settings)
    return policy, tokenizer, base_name


def _training_args(settings: TrainSettings, output_dir, seed: int, overrides: Mapping | None) -> TrainingArguments:
    return TrainingArguments(**{**training_kwargs(settings, output_dir, seed), **(overrides or {})})


def build_response_trainer(
    model: ModelConfig | str,
    responsesets: Mapping[str, ScoredSet],
    *,
    loss_fn: Callable,
    settings: TrainSettings,
    output_dir: str | Path,
    seed: int,
    weighting: ObjectiveWeighting | None = None,
    schedule: PreferenceSchedule | None = None,
    model_hook: Callable | None = None,
    adapter: Adapter = LORA,
    per_objective_gradients: bool | None = None,
    training_overrides: Mapping | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> MultiObjectiveSFTTrainer:
    """A ready-to-train :class:`MultiObjectiveSFTTrainer` on each objective's responses
    (``responsesets[objective]``: its prompts and responses); ``loss_fn(logps: ResponseLogps, k, w)``, e.g.
    :func:`moalign.train.losses.nll_loss`. The other arguments are :func:`build_preference_trainer`'s."""
    start = as_model_config(model)
    policy, tokenizer, base_name = _starting_policy(start, adapter, settings, seed)
    trainer = MultiObjectiveSFTTrainer(
        model=policy, args=_training_args(settings, output_dir, seed, training_overrides),
        train_dataset=build_response_dataset(tokenizer, responsesets, settings.max_length, seed),
        processing_class=tokenizer, callbacks=list(callbacks), loss_fn=loss_fn, weighting=weighting,
        schedule=schedule, model_hook=model_hook, adapter=adapter, per_objective_gradients=per_objective_gradients,
    )
    trainer.moalign_base_name = base_name
    return attach_loss_lines(check_sharding(trainer))


def train_preference(
    model: ModelConfig | str,
    pairsets: Mapping[str, PairSet],
    *,
    save_dir: str | Path,
    checkpoint_dir: str | Path | None = None,
    **kwargs,
) -> Path:
    """Train and save to ``save_dir`` (``history.jsonl`` too); returns ``save_dir``.

    ``checkpoint_dir`` holds the Trainer's checkpoints (kept outside the atomic stage folder, so a killed run
    resumes mid-training from the newest *complete* checkpoint there and ends with the weights, and the
    preference sequence, of an uninterrupted run). ``kwargs`` go to :func:`build_preference_trainer`.
    """
    output_dir = checkpoint_dir if checkpoint_dir is not None else save_dir
    trainer = build_preference_trainer(model, pairsets, output_dir=output_dir, **kwargs)
    return _train_and_save(trainer, save_dir, checkpoint_dir)


def train_responses(
    model: ModelConfig | str,
    responsesets: Mapping[str, ScoredSet],
    *,
    save_dir: str | Path,
    checkpoint_dir: str | Path | None = None,
    **kwargs,
) -> Path:
    """:func:`train_preference` on each objective's responses alone (``kwargs`` go to
    :func:`build_response_trainer`): resumable the same way, saved the same way."""
    output_dir = checkpoint_dir if checkpoint_dir is not None else save_dir
    trainer = build_response_trainer(model, responsesets, output_dir=output_dir, **kwargs)
    return _train_and_save(trainer, save_dir, checkpoint_dir)


def _train_and_save(trainer, save_dir: str | Path, checkpoint_dir: str | Path | None) -> Path:
    """Train (from the newest complete checkpoint in ``checkpoint_dir``), save the policy and the history."""
    resume = last_complete_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    trainer.train(resume_from_checkpoint=resume)
    save_dir = save_policy(trainer, save_dir, adapter=trainer.adapter, base_name=trainer.moalign_base_name)
    if trainer.args.should_save:
        lines = "".join(json.dumps(row) + "\n" for row in trainer.history)
        (save_dir / HISTORY_FILE).write_text(lines, encoding="utf-8")
    del trainer
    return save_dir
