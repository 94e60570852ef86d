"""``moalign <argv>`` under torchrun, with rank ``KILL_RANK`` SIGKILLed at the end of optimiser step
``KILL_STEP`` of the first preference training it runs (the launcher then stops the other rank), as a crash of
one process mid-stage would; launched by tests/test_distributed_e2e.py."""

import os
import signal
import sys

from transformers import TrainerCallback

import moalign.train.preference_run as preference_run
from moalign.cli import main

RANK, STEP = int(os.environ["KILL_RANK"]), int(os.environ["KILL_STEP"])


class KillAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= STEP and int(os.environ.get("RANK", "0")) == RANK:
            os.kill(os.getpid(), signal.SIGKILL)


build = preference_run.build_preference_trainer


def build_with_kill(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.add_callback(KillAt())
    return trainer


preference_run.build_preference_trainer = build_with_kill
sys.exit(main(sys.argv[1:]))
