"""``moalign <argv>`` under torchrun with two test hooks on every preference trainer it builds: with
``KILL_RANK``/``KILL_STEP``, that rank is SIGKILLed at the end of that optimiser step of the first trainer (the
launcher then stops the other rank), as a crash of one process mid-stage would; with ``RECORD_STEPS`` (a file),
each rank appends ``<trainer index> <rank> <step>`` for every step it trains. Launched by
tests/test_distributed_e2e.py."""

import os
import signal
import sys

from transformers import TrainerCallback

import moalign.train.preference_run as preference_run
from moalign.cli import main

RANK = int(os.environ.get("RANK", "0"))
KILL_RANK, KILL_STEP = int(os.environ.get("KILL_RANK", "-1")), int(os.environ.get("KILL_STEP", "0"))
RECORD = os.environ.get("RECORD_STEPS")


class Hooks(TrainerCallback):
    def __init__(self, index: int):
        self.index = index

    def on_step_end(self, args, state, control, **kwargs):
        if RECORD:
            with open(RECORD, "a", encoding="utf-8") as handle:
                handle.write(f"{self.index} {RANK} {state.global_step}\n")
        if self.index == 0 and RANK == KILL_RANK and state.global_step >= KILL_STEP:
            os.kill(os.getpid(), signal.SIGKILL)


build, built = preference_run.build_preference_trainer, []


def build_with_hooks(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.add_callback(Hooks(len(built)))
    built.append(trainer)
    return trainer


preference_run.build_preference_trainer = build_with_hooks
sys.exit(main(sys.argv[1:]))
