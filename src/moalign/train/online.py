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
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moalign.config import ConfigError, ModelConfig, TrainSettings, check_choice, check_range
from moalign.train.args import training_kwargs

HISTORY_FILE = "history.jsonl"  # as the other trainers (moalign.train.sft, moalign.train.preference_run)
AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")
SCALINGS = ("group", "batch", "none")
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo")


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
        reward_weights=[float(x) for x in weights], log_completions=False,
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


def _model_and_tokenizer(start: Any, tokenizer, model_config: ModelConfig, settings: TrainSettings):
    """(model, tokenizer, peft_config, base name) for a base model name/folder, a full checkpoint or a model."""
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
    return model, tokenizer, peft_config, path


def build_grpo_trainer(
    start: Any,
    prompts: Sequence[str],
    rewards: Sequence,
    weights: Sequence[float],
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
):
    """The ready-to-train ``GRPOTrainer`` on the scalarised reward ``w . r`` (not yet trained).

    ``start``: a base model (name, folder or ``"embedded"``), a full checkpoint folder or a loaded model (then pass
    ``tokenizer``); ``train.lora.r > 0`` trains a new LoRA (the reference is then the adapter switched off), else
    full fine-tuning against a frozen copy of ``start``. ``rewards``: moalign reward functions, one per objective
    (``objectives`` names them; default: their ``name``). ``zscore``/``clean``: see :func:`reward_functions`.
    """
    from datasets import Dataset
    from transformers import set_seed

    from moalign.console import attach_loss_lines
    from moalign.train.checkpoints import CompleteCheckpointMarker

    names = list(objectives) if objectives is not None else [getattr(r, "name", f"reward_{i}") for i, r in enumerate(rewards)]
    w = check_weights(weights, len(names))
    if len(prompts) == 0:
        raise ValueError("train.online: no prompts to train on")
    set_seed(seed)  # LoRA weights and resized embedding rows are drawn from the seed
    model, tokenizer, peft_config, path = _model_and_tokenizer(start, tokenizer, model_config or ModelConfig(), train)
    tokenizer.padding_side = "left"  # TRL generates from left-padded prompts
    trainer = _epoch_sampler_trainer()(
        model=model,
        reward_funcs=reward_functions(rewards, names, zscore=zscore, clean=clean),
        args=grpo_config(settings, train, output_dir, seed, w),
        train_dataset=Dataset.from_dict({"prompt": list(prompts)}),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[CompleteCheckpointMarker()],
    )
    trainer.moalign_base_name = path
    return attach_loss_lines(trainer)


def train_online(
    start: Any,
    prompts: Sequence[str],
    rewards: Sequence,
    weights: Sequence[float],
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
    ``history.jsonl``: TRL's log rows (loss, ``reward``, ``rewards/<objective>/mean``, ``kl``, ...).
    ``kwargs`` go to :func:`build_grpo_trainer`.
    """
    from moalign.train.checkpoints import last_complete_checkpoint
    from moalign.train.saving import save_policy

    output_dir = checkpoint_dir if checkpoint_dir is not None else save_dir
    trainer = build_grpo_trainer(start, prompts, rewards, weights, settings, train, output_dir, seed=seed, **kwargs)
    resume = last_complete_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    trainer.train(resume_from_checkpoint=resume)
    saved = save_policy(trainer, save_dir, base_name=trainer.moalign_base_name)
    if trainer.args.should_save:
        rows = "".join(json.dumps(row) + "\n" for row in trainer.state.log_history)
        (saved / HISTORY_FILE).write_text(rows, encoding="utf-8")
    del trainer
    return saved
