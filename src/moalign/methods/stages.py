"""The stage toolkit every method composes: a training stage that resumes mid-training.

A training stage runs ``train(checkpoint_dir, save_dir)``: the Trainer writes its checkpoints under
``<run>/_checkpoints/<stage>-<hash>``, outside the atomic stage folder, so a killed run resumes from the
last complete checkpoint instead of step 0; the final weights go into the stage folder, renamed into place
when complete; the checkpoints are deleted once the stage has finished (moved into ``<stage>/checkpoints/``
instead when the stage's ``TrainSettings.keep_checkpoints`` is on). The hash covers the stage's inputs and its
upstream stages, exactly as :meth:`moalign.pipeline.Run.stage` hashes them, so a checkpoint is never resumed
under changed inputs. The Trainer's ``report_to`` files (TensorBoard events, wandb's local files) go to
``<run>/logs/<stage>/``, beside the stages, so they outlive the checkpoints. SFT
(:func:`moalign.train.sft.train_sft`) and preference training (:func:`moalign.train.preference_run.train_preference`)
both take the ``(checkpoint_dir, save_dir)`` pair.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moalign import distributed
from moalign.config import TrainSettings
from moalign.pipeline import Run, inputs_hash

CHECKPOINTS = "_checkpoints"
LOGS = "logs"
KEPT_CHECKPOINTS = "checkpoints"  # inside a finished stage folder, with keep_checkpoints


def checkpoint_dir(run: Run, name: str, inputs, depends_on: Iterable[str] = ()) -> Path:
    """Where stage ``name`` keeps its Trainer checkpoints (one folder per distinct inputs + upstream state)."""
    deps = {dep: run.stage_hash(dep) for dep in depends_on}
    safe = re.sub(r"[^A-Za-z0-9_.=,-]+", "_", name)
    return run.root / CHECKPOINTS / f"{safe}-{inputs_hash({'inputs': inputs, 'deps': deps})}"


def logs_dir(run: Run, name: str) -> Path:
    """``<run>/logs/<stage>/``: where stage ``name``'s trainers write their ``report_to`` files."""
    return run.root / LOGS / run.stage_dir(name).relative_to(run.root)


def training_stage(
    run: Run, name: str, inputs, train: Callable[[Path, Path], None], depends_on: Iterable[str] = (), *,
    keep_checkpoints: bool | None = None,
) -> Path:
    """Run ``train(checkpoint_dir, save_dir)`` as stage ``name`` (skipped when done); returns the stage folder.

    ``keep_checkpoints``: move the Trainer checkpoints into ``<stage>/checkpoints/`` instead of deleting them;
    None: as any ``TrainSettings`` among ``inputs`` asks (``train.keep_checkpoints``)."""
    depends_on = list(depends_on)
    checkpoints = checkpoint_dir(run, name, inputs, depends_on)
    keep = wants_checkpoints(inputs) if keep_checkpoints is None else keep_checkpoints
    logs = logs_dir(run, name)

    def compute(out: Path) -> None:  # on every rank of a launch: the Trainer trains data-parallel
        from moalign.train.args import logging_to
        from moalign.train.checkpoints import checkpoint_folders, last_complete_checkpoint

        main = distributed.is_main()
        if main and last_complete_checkpoint(checkpoints, remove_incomplete=False) is None:
            shutil.rmtree(logs, ignore_errors=True)  # a fresh start: no events left by an earlier attempt
        if main:
            logs.mkdir(parents=True, exist_ok=True)
        distributed.barrier()
        with logging_to(logs):
            train(checkpoints, out)
        distributed.barrier()  # every rank is done with the checkpoints
        for folder in checkpoint_folders(checkpoints) if keep and main else ():
            (out / KEPT_CHECKPOINTS).mkdir(exist_ok=True)
            shutil.move(str(folder), str(out / KEPT_CHECKPOINTS / folder.name))

    try:
        folder = run.stage(name, inputs, compute, depends_on=depends_on, ranks="all")
        if distributed.is_main():
            shutil.rmtree(checkpoints, ignore_errors=True)
    finally:
        if distributed.is_main():
            _remove_empty_folders(run.root / CHECKPOINTS)
            _remove_empty_folders(run.root / LOGS)
    return folder


def wants_checkpoints(inputs: Any) -> bool:
    """True when any :class:`TrainSettings` inside ``inputs`` (dicts, lists, dataclasses) keeps its checkpoints."""
    if isinstance(inputs, TrainSettings):
        return inputs.keep_checkpoints
    if dataclasses.is_dataclass(inputs) and not isinstance(inputs, type):
        inputs = [getattr(inputs, f.name) for f in dataclasses.fields(inputs)]
    elif isinstance(inputs, dict):
        inputs = list(inputs.values())
    return isinstance(inputs, (list, tuple)) and any(wants_checkpoints(value) for value in inputs)


def _remove_empty_folders(root: Path) -> None:
    """Remove ``root`` and the folders below it that hold no file (deepest first)."""
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        _rmdir(folder)
    _rmdir(root)


def _rmdir(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty
