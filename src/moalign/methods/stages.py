"""The stage toolkit every method composes: a training stage that resumes mid-training.

A training stage runs ``train(checkpoint_dir, save_dir)``: the Trainer writes its checkpoints under
``<run>/_checkpoints/<stage>-<hash>``, outside the atomic stage folder, so a killed run resumes from the
last complete checkpoint instead of step 0; the final weights go into the stage folder, renamed into place
when complete; the checkpoints are deleted once the stage has finished. The hash covers the stage's inputs
and its upstream stages, exactly as :meth:`moalign.pipeline.Run.stage` hashes them, so a checkpoint is never
resumed under changed inputs. SFT (:func:`moalign.train.sft.train_sft`) and preference training
(:func:`moalign.train.preference_run.train_preference`) both take this ``(checkpoint_dir, save_dir)`` pair.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from moalign.pipeline import Run, inputs_hash

CHECKPOINTS = "_checkpoints"


def checkpoint_dir(run: Run, name: str, inputs, depends_on: Iterable[str] = ()) -> Path:
    """Where stage ``name`` keeps its Trainer checkpoints (one folder per distinct inputs + upstream state)."""
    deps = {dep: run.stage_hash(dep) for dep in depends_on}
    safe = re.sub(r"[^A-Za-z0-9_.=,-]+", "_", name)
    return run.root / CHECKPOINTS / f"{safe}-{inputs_hash({'inputs': inputs, 'deps': deps})}"


def training_stage(
    run: Run, name: str, inputs, train: Callable[[Path, Path], None], depends_on: Iterable[str] = ()
) -> Path:
    """Run ``train(checkpoint_dir, save_dir)`` as stage ``name`` (skipped when done); returns the stage folder."""
    depends_on = list(depends_on)
    checkpoints = checkpoint_dir(run, name, inputs, depends_on)
    folder = run.stage(name, inputs, lambda out: train(checkpoints, out), depends_on=depends_on)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return folder
