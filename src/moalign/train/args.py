"""TrainSettings -> keyword arguments of transformers' TrainingArguments (and TRL's configs built on it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moalign.config import TrainSettings


def training_kwargs(settings: TrainSettings, output_dir: str | Path, seed: int) -> dict:
    """Arguments shared by every moalign trainer; CPU-safe (bf16 only when asked, no gradient checkpointing).

    ``settings.extra`` (any other ``TrainingArguments`` field the config names: ``optim``, ``adam_beta2``,
    ``save_total_limit`` ...) is merged last, with its YAML types; the fields moalign sets itself are refused
    when the config is loaded (:data:`moalign.config.TRAINING_ARGUMENTS_SET_BY_MOALIGN`)."""
    return {
        "output_dir": str(output_dir),
        "learning_rate": settings.learning_rate,
        "max_steps": settings.max_steps if settings.max_steps > 0 else -1,
        "num_train_epochs": settings.num_train_epochs,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "lr_scheduler_type": settings.lr_scheduler_type,
        # transformers 5 dropped ``warmup_ratio``: a float in [0, 1) given as ``warmup_steps`` is that ratio
        "warmup_steps": float(settings.warmup_ratio),
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm,
        "logging_steps": settings.logging_steps,
        "save_strategy": "steps" if settings.save_steps > 0 else "no",
        "save_steps": settings.save_steps if settings.save_steps > 0 else 500,
        "bf16": settings.bf16,
        "fp16": False,
        "activation_checkpointing": settings.gradient_checkpointing,  # transformers 5's name for it
        "report_to": settings.report_to,
        "seed": seed,
        "data_seed": seed,
        "disable_tqdm": False,
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "use_cpu": not _has_accelerator(),
        **settings.extra,
    }


# environment variables the logging integrations read when a Trainer is built: where their files go
LOG_DIR_VARIABLES = ("TENSORBOARD_LOGGING_DIR", "WANDB_DIR")


@contextmanager
def logging_to(folder: str | Path) -> Iterator[Path]:
    """Trainers built inside this block write their ``report_to`` files (TensorBoard events, wandb's local
    files) into ``folder`` instead of under their checkpoint folder. A variable the user set already wins."""
    folder = Path(folder)
    saved = {name: os.environ.get(name) for name in LOG_DIR_VARIABLES}
    for name in LOG_DIR_VARIABLES:
        os.environ.setdefault(name, str(folder))
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


class ShardingDroppedWarning(UserWarning):
    """FSDP was asked for, and the Trainer runs without it."""


def check_sharding(trainer):
    """``trainer``, after a loud warning when FSDP was asked for (``fsdp`` in the train settings, or an
    accelerate FSDP config) but accelerate did not apply it: it does so only on accelerators, so on CPUs the
    run is plain data parallel (each rank holds the whole model). Every moalign trainer builder calls this."""
    import warnings

    asked = bool(getattr(trainer.args, "fsdp", None)) or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if asked and not trainer.is_fsdp_enabled:
        warnings.warn("FSDP was asked for, but accelerate did not enable it (it shards only on GPUs/accelerators): "
                      "this run is data parallel without sharding, every rank holding the whole model",
                      ShardingDroppedWarning, stacklevel=2)
    return trainer
