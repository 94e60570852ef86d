"""Online RL on several rewards: a thin layer on TRL's ``GRPOTrainer`` (TRL 1.16 has no PPO).

The policy samples ``num_generations`` completions per prompt; each objective's reward scores them; TRL combines
the per-objective rewards with the preference ``w`` (its ``reward_weights``) into group-relative advantages and
optimises the clipped policy-gradient loss with a KL penalty ``beta`` towards the starting model. Everything else
(generation, the loss, the reference model or adapter-off reference, checkpoints, logging, accelerate/DeepSpeed)
is TRL's. This module only adds what moalign needs around it:

* the adapter from moalign's reward protocol (``(prompts, responses) -> (n,) array``) to TRL's reward functions
  (``(prompts, completions, **kwargs) -> list[float]``), one per objective, optionally z-scored with train-set
  statistics and reading each completion as the evaluation does (cut at stop strings);
* typed settings (:class:`GRPOSettings`) with the KL penalty required (``beta > 0``) and TRL's two ways of
  combining rewards (``aggregation`` / ``scale_rewards``) as documented fields;
* LoRA or full fine-tuning, CPU-safe arguments, resume from the newest complete checkpoint, one save format.

How TRL turns the rewards ``r`` (n x k) into advantages, for a group of G completions of one prompt:

* ``sum_then_normalize`` (default): ``s = r @ w``; ``A = s - mean_group(s)``, divided by ``std_group(s) + 1e-4``
  (``scale_rewards="group"``), by ``std_batch(s) + 1e-4`` (``"batch"``) or by nothing (``"none"``);
* ``normalize_then_sum`` (GDPO): each objective is z-scored within its group first, ``z_k = (r_k - mean_group) /
  (std_group + 1e-4)``, then ``s = z @ w`` and ``A = (s - mean_batch(s)) / (std_batch(s) + 1e-4)``.

Stds are unbiased (``torch.std``). Checked against hand numbers in tests/train/test_online.py.

**A preference per generation batch** (Panacea's RLHF variant): pass a
:class:`~moalign.train.schedule.PreferenceSchedule` instead of ``w``. Before TRL generates a batch, lambda is
drawn for that batch's index in the run (a pure function of ``(seed, index)``, so a resumed run draws the
same sequence), written into the model through ``model_hook`` (``moalign.models.svd_lora.set_preference``) and
set as TRL's ``reward_weights``: TRL's own combination above then scalarises with lambda (``s = r @ lambda``)
and still logs ``rewards/<objective>/mean``; ``preference/<objective>`` logs lambda. TRL's loss steps only
read slices of the buffered generation batch (``_prepare_inputs`` regenerates every ``steps_per_generation *
num_iterations`` micro-steps and never mixes two generations in one slice), and nothing else writes the
preference, so every loss forward of those slices runs with the lambda the batch was generated and scored
with (tests/train/test_online.py records it). ``adapter`` (e.g. ``SVDLoraAdapter``) replaces the plain LoRA:
TRL builds it from ``adapter.peft_config(train)``, the reference is the adapter switched off, and the model
is saved by ``adapter.save`` (Panacea's spec file included).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moalign.config import (
    ADDED_LATER,
    ENGINE_SETTING,
    GENERATION_BACKENDS,
    ConfigError,
    ModelConfig,
    TrainSettings,
    check_choice,
    check_range,
    vllm_unavailable_reason,
)
from moalign.train.args import check_sharding, training_kwargs
from moalign.train.schedule import PreferenceSchedule

HISTORY_FILE = "history.jsonl"  # as the other trainers (moalign.train.sft, moalign.train.preference_run)
SCHEDULE_FILE = "preference_schedule.json"  # in each checkpoint of a preference-sampling run
AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")
SCALINGS = ("group", "batch", "none")
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo")
VLLM_MODES = ("colocate", "server")  # TRL's: an engine in each training process, or `trl vllm-serve` elsewhere


@dataclass
class GRPOSettings:
    """The RL settings of an online stage (TRL ``GRPOConfig`` fields); the optimiser is ``TrainSettings``'."""

    beta: float = 0.05  # KL penalty towards the starting model; MORLHF is KL-regularised, so it must be > 0
    num_generations: int = 4  # completions per prompt (the group); >= 2
    max_completion_length: int = 48  # new tokens per completion
    temperature: float = 0.7  # rollout sampling (RiC's MORLHF: 0.7, top_p 1.0, top_k 0)
    top_p: float = 1.0
    top_k: int = 0
    aggregation: str = "sum_then_normalize"  # | normalize_then_sum (GDPO): see the module docstring
    scale_rewards: str = "group"  # group | batch | none (only with sum_then_normalize)
    loss_type: str = "dapo"  # TRL's default token-level aggregation of the loss
    num_iterations: int = 1  # policy updates per generated batch (GRPO's mu)
    epsilon: float = 0.2  # ratio clipping
    # who samples the rollouts: "hf" the policy itself (transformers' generate inside TRL); "vllm" TRL's own vLLM
    # integration (GRPOConfig.use_vllm; weights synced to the engine each step), on a GPU with vLLM installed
    backend: str = field(default="hf", metadata=ADDED_LATER)
    vllm_mode: str = field(default="colocate", metadata=ENGINE_SETTING)  # | server (`trl vllm-serve` on other GPUs)
    vllm_gpu_memory_utilization: float = field(default=0.3, metadata=ENGINE_SETTING)  # colocate: the engine's share

    def __post_init__(self) -> None:
        if isinstance(self.beta, (int, float)) and not isinstance(self.beta, bool) and self.beta == 0:
            raise ConfigError("grpo.beta=0: MORLHF maximises w . r - beta * KL(policy || start), so the KL penalty "
                              "must be > 0 (with 0 TRL drops the reference model and the run is unregularised); "
                              "e.g. grpo.beta=0.05")
        check_range("grpo.beta", self.beta, low=0, strict=True, fix="e.g. grpo.beta=0.05")
        check_range("grpo.num_generations", self.num_generations, low=2, integer=True,
                    fix="GRPO's advantages compare completions of the same prompt, so it needs at least 2")
        check_range("grpo.max_completion_length", self.max_completion_length, low=1, integer=True)
        check_range("grpo.temperature", self.temperature, low=0, strict=True, fix="rollouts are sampled")
        check_range("grpo.top_p", self.top_p, low=0, high=1, strict=True, fix="1.0 turns nucleus sampling off")
        check_range("grpo.top_k", self.top_k, low=0, integer=True, fix="0 turns top-k off")
        check_choice("grpo.aggregation", self.aggregation, AGGREGATIONS)
        check_choice("grpo.scale_rewards", self.scale_rewards, SCALINGS)
        check_choice("grpo.loss_type", self.loss_type, LOSS_TYPES)
        check_range("grpo.num_iterations", self.num_iterations, low=1, integer=True)
        check_range("grpo.epsilon", self.epsilon, low=0, strict=True)
        check_choice("grpo.backend", self.backend, GENERATION_BACKENDS)
        check_choice("grpo.vllm_mode", self.vllm_mode, VLLM_MODES)
        check_range("grpo.vllm_gpu_memory_utilization", self.vllm_gpu_memory_utilization, low=0, high=1, strict=True)

    def trl_generation_kwargs(self) -> dict:
        """The ``GRPOConfig`` fields of the rollout backend; ConfigError when vLLM cannot run on this machine."""
        if self.backend == "hf":
            return {"use_vllm": False}
        reason = vllm_unavailable_reason()
        if reason is not None:
            raise ConfigError(f"grpo.backend=vllm: {reason}; set grpo.backend=hf to sample with the policy itself")
        return {"use_vllm": True, "vllm_mode": self.vllm_mode,
                "vllm_gpu_memory_utilization": self.vllm_gpu_memory_utilization}


class ObjectiveReward:
    """One objective's reward as a TRL reward function: ``(prompts, completions, **kwargs) -> list[float]``.

    ``clean`` rewrites each completion before scoring (the evaluation's stop-string cut); ``mean``/``std`` z-score
    the raw reward (``(r - mean) / std``; 0 and 1 leave it raw). ``__name__`` is the objective: TRL logs
    ``rewards/<objective>/mean``.
    """

    def __init__(self, reward, name: str, *, mean: float = 0.0, std: float = 1.0,
                 clean: Callable[[str], str] | None = None):
        if not np.isfinite(std) or std <= 0:
            raise ValueError(f"reward {name!r}: std={std} must be a finite number > 0")
        self.reward, self.__name__, self.mean, self.std, self.clean = reward, name, float(mean), float(std), clean

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **kwargs) -> list[float]:
        texts = [self.clean(c) for c in completions] if self.clean else list(completions)
        values = np.asarray(self.reward(list(prompts), texts), dtype=np.float64).reshape(-1)
        if values.shape[0] != len(texts):
            raise ValueError(f"reward {self.__name__!r} returned {values.shape[0]} scores for {len(texts)} completions")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"reward {self.__name__!r} returned NaN or inf scores")
        return ((values - self.mean) / self.std).tolist()


def reward_functions(rewards: Sequence, objectives: Sequence[str], *, zscore=None,
                     clean: Callable[[str], str] | None = None) -> list[ObjectiveReward]:
    """One :class:`ObjectiveReward` per objective, in order; ``zscore`` (a fitted
    :class:`moalign.rewards.normalize.ZScore` over ``objectives``) puts each reward in train z-units."""
    if len(rewards) != len(objectives):
        raise ValueError(f"{len(rewards)} rewards for {len(objectives)} objectives {list(objectives)}; give one each")
    stats = zscore.select(list(objectives)) if zscore is not None else None
    return [ObjectiveReward(r, name, mean=0.0 if stats is None else stats.mean[i],
                            std=1.0 if stats is None else stats.std[i], clean=clean)
            for i, (r, name) in enumerate(zip(rewards, objectives, strict=True))]


def check_weights(weights: Sequence[float], k: int) -> np.ndarray:
    """The preference as a float array: k non-negative entries summing to 1 (ValueError naming it otherwise)."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != k or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-6):
        raise ValueError(f"preference w={list(np.round(w, 6))}: expected {k} non-negative weights summing to 1")
    return w


def grpo_config(settings: GRPOSettings, train: TrainSettings, output_dir: str | Path, seed: int,
                weights: Sequence[float]):
    """TRL ``GRPOConfig``: moalign's CPU-safe training arguments plus the RL settings and ``reward_weights=w``."""
    from trl import GRPOConfig

    batch = train.per_device_train_batch_size * train.gradient_accumulation_steps
    if batch % settings.num_generations:
        raise ConfigError(
            f"train.per_device_train_batch_size * train.gradient_accumulation_steps = {batch} completions per "
            f"step is not a multiple of grpo.num_generations={settings.num_generations}: a step must hold whole "
            f"prompt groups (e.g. per_device_train_batch_size={settings.num_generations * max(1, batch // settings.num_generations)})")
    return GRPOConfig(
        **training_kwargs(train, output_dir, seed),
        gradient_checkpointing=train.gradient_checkpointing,  # TRL's default is True
        beta=settings.beta, num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length, temperature=settings.temperature,
        top_p=settings.top_p, top_k=settings.top_k, multi_objective_aggregation=settings.aggregation,
        scale_rewards=settings.scale_rewards, loss_type=settings.loss_type,
        num_iterations=settings.num_iterations, epsilon=settings.epsilon,
        reward_weights=[float(x) for x in weights], log_completions=False, **settings.trl_generation_kwargs(),
    )


@functools.cache
def _epoch_sampler_trainer():
    """``GRPOTrainer`` whose prompt order depends only on (seed, epoch), so a resumed run replays it exactly.

    TRL's ``RepeatSampler`` draws each epoch's permutation from one stateful generator seeded once; a run resumed
    at epoch e builds a fresh sampler and would replay epoch 0's order. Here the generator is re-seeded with
    ``seed + epoch`` before every epoch (the epoch read from the Trainer state when the epoch begins)."""
    import math

    from transformers import TrainerCallback
    from trl import GRPOTrainer
    from trl.trainer.utils import RepeatSampler

    class EpochSeededSampler(RepeatSampler):
        epoch = 0

        def __iter__(self):
            if self.shuffle:
                self.generator.manual_seed((self.seed or 0) + self.epoch)
            return super().__iter__()

    class SetEpoch(TrainerCallback):
        def __init__(self):
            self.samplers: list = []

        def on_epoch_begin(self, args, state, control, **kwargs):
            for sampler in self.samplers:
                sampler.epoch = math.floor((state.epoch or 0.0) + 1e-6)

    class ResumableGRPOTrainer(GRPOTrainer):
        def __init__(self, *args, callbacks=None, **kwargs):
            self._set_epoch = SetEpoch()
            super().__init__(*args, callbacks=[*(callbacks or []), self._set_epoch], **kwargs)

        def _get_train_sampler(self, dataset=None):
            sampler = super()._get_train_sampler(dataset)
            sampler.__class__ = EpochSeededSampler  # same fields; only the per-epoch seeding differs
            self._set_epoch.samplers = [sampler]
            return sampler

    return ResumableGRPOTrainer


@functools.cache
def _preference_sampling_trainer():
    """:func:`_epoch_sampler_trainer`'s trainer with a fresh preference lambda for every generation batch.

    The index of a generation batch counts the batches generated since step 0 (``(global_step * grad_accum +
    micro-step) // (steps_per_generation * num_iterations)``), so it is the same in a run resumed at a step
    boundary as in the uninterrupted run; lambda = ``schedule.draw(index, K)``. The schedule is recorded in each
    checkpoint and a resume under another one is refused, as in the preference trainer."""
    import torch

    class PreferenceGRPOTrainer(_epoch_sampler_trainer()):
        def __init__(self, *args, schedule: PreferenceSchedule, objectives: Sequence[str],
                     model_hook: Callable | None = None, **kwargs):
            if schedule.per_sample:
                raise ValueError("a preference-sampling GRPO run draws one lambda per generation batch (TRL's "
                                 "reward_weights are one vector per batch); use a schedule with per_sample=False")
            super().__init__(*args, **kwargs)
            self.schedule = schedule.with_seed(self.args.seed)
            self.schedule.check_objectives(len(objectives))
            self.objective_names, self.model_hook = list(objectives), model_hook
            self.preferences: list[tuple[int, list[float]]] = []  # (generation index, lambda), in drawing order

        def generation_index(self) -> int:
            accumulation = self.args.gradient_accumulation_steps
            micro = self.state.global_step * accumulation + self._step % accumulation
            return micro // (self.args.steps_per_generation * self.num_iterations)

        def _generate_and_score_completions(self, inputs):
            if self.model.training:
                self._set_preference(self.generation_index())
            return super()._generate_and_score_completions(inputs)

        def _set_preference(self, index: int) -> None:
            lam = self.schedule.draw(index, len(self.objective_names))
            self.reward_weights = torch.tensor(lam, dtype=torch.float32)  # read only while scoring this batch
            if self.model_hook is not None:
                self.model_hook(self.accelerator.unwrap_model(self.model), torch.from_numpy(lam))
            self.preferences.append((index, lam.tolist()))
            for name, value in zip(self.objective_names, lam.tolist(), strict=True):
                self._metrics["train"][f"preference/{name}"].append(value)

        def _save_checkpoint(self, model, trial) -> None:
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
                with open(os.path.join(folder, SCHEDULE_FILE), "w", encoding="utf-8") as handle:
                    json.dump({"schedule": self.schedule.state_dict()}, handle)

        def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
            super()._load_optimizer_and_scheduler(checkpoint)
            path = None if checkpoint is None else os.path.join(checkpoint, SCHEDULE_FILE)
            if path is not None:
                saved = None
                if os.path.isfile(path):
                    with open(path, encoding="utf-8") as handle:
                        saved = json.load(handle)["schedule"]
                self.schedule.check_state(saved, where=checkpoint)

    return PreferenceGRPOTrainer


def _model_and_tokenizer(start: Any, tokenizer, model_config: ModelConfig, settings: TrainSettings, adapter=None):
    """(model, tokenizer, peft_config, base name) for a base model name/folder, a full checkpoint or a model;
    ``adapter`` (None: LoRA per ``settings.lora``) supplies the ``peft_config`` TRL builds the adapter from."""
    from moalign.models.load import is_adapter_dir, load_causal_lm
    from moalign.train.sft import load_tokenizer_for, prepare_trl_model

    if isinstance(start, (str, Path)) and is_adapter_dir(start):
        raise ValueError(f"train.online: {start} is an adapter folder; start online RL from a base model or a full "
                         "checkpoint (merge the adapter first: moalign.models.svd_lora/peft merge_and_unload)")
    path = str(start) if isinstance(start, (str, Path)) else None
    if tokenizer is None:
        tokenizer = load_tokenizer_for(path, None, model_config)
    model = start
    if path is not None:
        revision = model_config.revision if path == model_config.name_or_path else None
        model = load_causal_lm(path, revision=revision, dtype=model_config.dtype,
                               trust_remote_code=model_config.trust_remote_code)
    model, peft_config = prepare_trl_model(model, tokenizer, settings, None, None)
    if adapter is not None:
        if not callable(getattr(adapter, "peft_config", None)):
            raise TypeError(f"train.online: adapter {getattr(adapter, 'name', adapter)!r} has no peft_config("
                            "settings) method; TRL builds the adapter from a peft config")
        peft_config = adapter.peft_config(settings)
    return model, tokenizer, peft_config, path


def build_grpo_trainer(
    start: Any,
    prompts: Sequence[str],
    rewards: Sequence,
    weights: Sequence[float] | PreferenceSchedule,
    settings: GRPOSettings,
    train: TrainSettings,
    output_dir: str | Path,
    *,
    seed: int,
    objectives: Sequence[str] | None = None,
    zscore=None,
    clean: Callable[[str], str] | None = None,
    tokenizer=None,
    model_config: ModelConfig | None = None,
    adapter=None,
    model_hook: Callable | None = None,
):
    """The ready-to-train ``GRPOTrainer`` on the scalarised reward ``w . r`` (not yet trained).

    ``start``: a base model (name, folder or ``"embedded"``), a full checkpoint folder or a loaded model (then pass
    ``tokenizer``); ``train.lora.r > 0`` trains a new LoRA (the reference is then the adapter switched off), else
    full fine-tuning against a frozen copy of ``start``. ``adapter`` (a :mod:`moalign.models.adapters` adapter
    with ``peft_config``, e.g. ``SVDLoraAdapter``) trains that adapter instead. ``rewards``: moalign reward
    functions, one per objective (``objectives`` names them; default: their ``name``). ``zscore``/``clean``: see
    :func:`reward_functions`. ``weights``: one preference ``w`` for the whole run, or a
    :class:`PreferenceSchedule`: a lambda drawn per generation batch, handed to ``model_hook(model, lambda)``
    before TRL generates (see the module docstring).
    """
    from datasets import Dataset
    from transformers import set_seed

    from moalign.console import attach_loss_lines
    from moalign.train.checkpoints import CompleteCheckpointMarker

    names = list(objectives) if objectives is not None else [getattr(r, "name", f"reward_{i}") for i, r in enumerate(rewards)]
    sampled = isinstance(weights, PreferenceSchedule)
    # a schedule's lambda replaces TRL's reward_weights before every batch is scored; uniform until then
    w = np.full(len(names), 1.0 / len(names)) if sampled else check_weights(weights, len(names))
    if len(prompts) == 0:
        raise ValueError("train.online: no prompts to train on")
    set_seed(seed)  # LoRA weights and resized embedding rows are drawn from the seed
    model, tokenizer, peft_config, path = _model_and_tokenizer(start, tokenizer, model_config or ModelConfig(), train,
                                                               adapter)
    tokenizer.padding_side = "left"  # TRL generates from left-padded prompts
    extra = {"schedule": weights, "objectives": names, "model_hook": model_hook} if sampled else {}
    trainer = (_preference_sampling_trainer() if sampled else _epoch_sampler_trainer())(
        model=model,
        reward_funcs=reward_functions(rewards, names, zscore=zscore, clean=clean),
        args=grpo_config(settings, train, output_dir, seed, w),
        train_dataset=Dataset.from_dict({"prompt": list(prompts)}),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[CompleteCheckpointMarker()],
        **extra,
    )
    trainer.moalign_base_name = path
    trainer.moalign_adapter = adapter
    return attach_loss_lines(check_sharding(trainer))


def train_online(
    start: Any,
    prompts: Sequence[str],
    rewards: Sequence,
    weights: Sequence[float] | PreferenceSchedule,
    settings: GRPOSettings,
    train: TrainSettings,
    save_dir: str | Path,
    *,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    **kwargs,
) -> Path:
    """GRPO on ``w . r`` with the KL penalty ``settings.beta``; returns ``save_dir``.

    With ``checkpoint_dir`` the Trainer checkpoints there (every ``train.save_steps``) and a rerun resumes from the
    newest complete checkpoint. The folder loads with :func:`moalign.models.load.load_policy` and holds
    ``history.jsonl``: TRL's log rows (loss, ``reward``, ``rewards/<objective>/mean``, ``kl``, ...; with a
    schedule also ``preference/<objective>``). ``kwargs`` go to :func:`build_grpo_trainer` (``adapter``: the
    model is saved through it).
    """
    from moalign.train.checkpoints import last_complete_checkpoint
    from moalign.train.saving import save_policy

    output_dir = checkpoint_dir if checkpoint_dir is not None else save_dir
    trainer = build_grpo_trainer(start, prompts, rewards, weights, settings, train, output_dir, seed=seed, **kwargs)
    resume = last_complete_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    trainer.train(resume_from_checkpoint=resume)
    from moalign.models.adapters import LORA

    saved = save_policy(trainer, save_dir, adapter=trainer.moalign_adapter or LORA, base_name=trainer.moalign_base_name)
    if trainer.args.should_save:
        rows = "".join(json.dumps(row) + "\n" for row in trainer.state.log_history)
        (saved / HISTORY_FILE).write_text(rows, encoding="utf-8")
    del trainer
    return saved
