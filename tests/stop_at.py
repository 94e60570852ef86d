"""A Trainer callback that ends training after a given step, as if the run had been stopped there (the
checkpoints written so far stay), shared by the trainer resume tests."""

from __future__ import annotations

from transformers import TrainerCallback


class StopAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
