"""Trainer checkpoints that a kill cannot poison.

The ``transformers.Trainer`` writes ``checkpoint-N`` in place, file by file; a process killed mid-write leaves
a folder that ``get_last_checkpoint`` still returns, and every rerun then fails to resume from it. Here a
checkpoint counts only once :class:`CompleteCheckpointMarker` has stamped it (``on_save`` runs after the
Trainer and any subclass finished writing it), and :func:`last_complete_checkpoint` removes unstamped ones
before resuming. The Trainer has no such notion (its own check only looks for the folder), so it is written here.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

COMPLETE_FILE = "moalign_checkpoint_complete"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class CompleteCheckpointMarker(TrainerCallback):
    """Stamps ``checkpoint-<step>`` as complete once the Trainer has written all of it (main process only)."""

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if args.should_save and folder.is_dir():
            (folder / COMPLETE_FILE).write_text(f"{state.global_step}\n", encoding="utf-8")
        return control


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """Every ``checkpoint-N`` folder under ``output_dir``, oldest step first."""
    path = Path(output_dir)
    if not path.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in path.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def is_complete(folder: str | Path) -> bool:
    return (Path(folder) / COMPLETE_FILE).is_file()


def last_complete_checkpoint(output_dir: str | Path, *, remove_incomplete: bool = True) -> str | None:
    """The newest stamped checkpoint under ``output_dir`` (None when there is none).

    Unstamped folders (a kill while the Trainer was writing) are deleted when ``remove_incomplete``: they are
    moalign's own scratch, and the Trainer would otherwise trip over them when it rotates checkpoints.
    """
    newest = None
    for folder in checkpoint_folders(output_dir):
        if is_complete(folder):
            newest = folder
        elif remove_incomplete and _is_main_process():
            shutil.rmtree(folder, ignore_errors=True)
    return None if newest is None else str(newest)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0
