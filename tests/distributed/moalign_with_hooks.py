"""``moalign <argv>`` under torchrun with test hooks on every preference trainer it builds, each set by an
environment variable. Launched by tests/test_distributed_e2e.py.

- ``KILL_RANK``/``KILL_STEP``: that rank is SIGKILLed at the end of that optimiser step of the first trainer (the
  launcher then stops the other rank), as a crash of one process mid-stage would.
- ``RECORD_STEPS`` (a file): each rank appends ``<trainer index> <rank> <step>`` for every step it trains.
- ``RECORD_SHARDING`` (a file): each rank appends, once its first trainer has wrapped the model, a JSON line
  with the trainer's ``is_fsdp_enabled``/``is_deepspeed_enabled``, the parameter classes and the element counts
  it holds locally and in all (FSDP and ZeRO-3 shard each parameter over the ranks, ZeRO-1/2 the optimiser's
  fp32 copy of it; DDP replicates it).
- ``CPU_FSDP=1``: accelerate's FSDP gate is lifted for CPUs. Accelerate applies an FSDP config only when the
  processes run on accelerators (``AcceleratorState`` leaves ``MULTI_CPU`` as it is), although torch's FSDP2
  (``fully_shard``) shards over Gloo on CPUs. With the gate lifted, accelerate's own FSDP2 preparation, the
  Trainer's FSDP code paths and torch's sharding run here as they do on GPUs; nothing else is changed.
"""

import json
import os
import signal
import sys

from transformers import TrainerCallback

import moalign.train.preference_run as preference_run
from moalign.cli import main

RANK = int(os.environ.get("RANK", "0"))
KILL_RANK, KILL_STEP = int(os.environ.get("KILL_RANK", "-1")), int(os.environ.get("KILL_STEP", "0"))
RECORD, SHARDING = os.environ.get("RECORD_STEPS"), os.environ.get("RECORD_SHARDING")


def lift_the_fsdp_gate() -> None:
    from accelerate.state import AcceleratorState, DistributedType, PartialState

    init = AcceleratorState.__init__

    def init_with_fsdp_on_cpus(self, *args, fsdp_plugin=None, **kwargs):
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin

    AcceleratorState.__init__ = init_with_fsdp_on_cpus


def sharding_of(trainer) -> dict:
    params = list(trainer.model_wrapped.parameters())
    record = {"rank": RANK, "fsdp": trainer.is_fsdp_enabled, "classes": sorted({type(p).__name__ for p in params}),
              "deepspeed": trainer.is_deepspeed_enabled}
    if trainer.is_deepspeed_enabled:
        return {**record, **zero_sharding_of(trainer.model_wrapped)}
    local = [p.to_local() if hasattr(p, "to_local") else p for p in params]
    return {**record, "local": sum(p.numel() for p in local), "total": sum(p.numel() for p in params)}


def zero_sharding_of(engine) -> dict:
    """ZeRO-3: each rank's partition of every parameter; ZeRO-1/2: its partition of the fp32 master weights and
    optimiser states (the parameters themselves are whole on every rank). Partitions are padded for alignment."""
    stage = engine.zero_optimization_stage()
    trainable = [p for p in engine.module.parameters() if p.requires_grad]
    if stage == 3:
        return {"zero_stage": 3, "local": sum(p.ds_tensor.numel() for p in trainable),
                "total": sum(p.ds_numel for p in trainable)}
    return {"zero_stage": stage, "local": sum(t.numel() for t in engine.optimizer.single_partition_of_fp32_groups),
            "total": sum(p.numel() for p in trainable)}


class Hooks(TrainerCallback):
    def __init__(self, trainer, index: int):
        self.trainer, self.index = trainer, index

    def on_train_begin(self, args, state, control, **kwargs):
        if SHARDING and self.index == 0:
            with open(SHARDING, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(sharding_of(self.trainer)) + "\n")

    def on_step_end(self, args, state, control, **kwargs):
        if RECORD:
            with open(RECORD, "a", encoding="utf-8") as handle:
                handle.write(f"{self.index} {RANK} {state.global_step}\n")
        if self.index == 0 and RANK == KILL_RANK and state.global_step >= KILL_STEP:
            os.kill(os.getpid(), signal.SIGKILL)


build, built = preference_run.build_preference_trainer, []


def build_with_hooks(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.add_callback(Hooks(trainer, len(built)))
    built.append(trainer)
    return trainer


if os.environ.get("CPU_FSDP") == "1":
    lift_the_fsdp_gate()
preference_run.build_preference_trainer = build_with_hooks
sys.exit(main(sys.argv[1:]))
