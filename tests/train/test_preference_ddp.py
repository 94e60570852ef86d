"""Two DDP processes (CPU, gloo, batch 2 each) give the same parameters as one process with batch 4.

Covers what the multi-process code of the preference trainer does: MGDA's gradient buffer averaged over
processes before the Gram matrix, the last-layers variant, the sequential linear path (no_sync on all but the
last objective), GroupDRO's weights from losses averaged over processes, and a random preference schedule
(per step: both ranks draw the same w; per pair: each rank takes its rows of the global batch's draw). The
file is also the script each process runs (``torchrun --nproc_per_node 2 this_file.py ...``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

VARIANTS = {  # name -> (MGDA mode, or None for the scheduled preference; trainer keyword arguments)
    "decoupled": ("decoupled", {}),
    "decoupled-last-layer": ("decoupled", {"grad_layers": 1}),
    "uniform-linear": ("uniform", {}),
    "groupdro-linear": ("groupdro", {}),
    "dirichlet-per-step": (None, {"schedule": {"alpha": 0.5, "seed": 3}}),
    "dirichlet-per-sample": (None, {"schedule": {"alpha": 0.5, "seed": 3, "per_sample": True}}),
}


def train_and_save(model_dir: str, out: str, batch: int, variant: str) -> None:
    import torch

    from moalign.config import TrainSettings
    from moalign.data.schema import PairSet
    from moalign.methods.mgda import MGDAWeighting
    from moalign.train.losses import dpo_pair_loss
    from moalign.train.preference_run import build_preference_trainer
    from moalign.train.schedule import PreferenceSchedule
    from moalign.train.weighting import PreferenceWeights

    torch.set_num_threads(1)

    def pairs(objective, n, offset):
        prompts = [f"\n\nHuman: Q{i + offset} about bread?\n\nAssistant:" for i in range(n)]
        chosen = ["Lovely, happy to help!" if i % 2 else "Sure." for i in range(n)]
        rejected = ["No." if i % 3 else "Go away, dull question." for i in range(n)]
        return PairSet(prompts, chosen, rejected, [objective] * n)

    mode, kwargs = VARIANTS[variant]
    kwargs = dict(kwargs)
    if "schedule" in kwargs:
        kwargs["schedule"] = PreferenceSchedule(**kwargs["schedule"])
    settings = TrainSettings(learning_rate=0.05, max_steps=3, per_device_train_batch_size=batch, max_length=48,
                             max_grad_norm=0.0, logging_steps=1)
    trainer = build_preference_trainer(
        model_dir, {"a": pairs("a", 16, 0), "b": pairs("b", 16, 50)}, loss_fn=dpo_pair_loss(0.5),
        weighting=MGDAWeighting(mode, 2, eta=0.5) if mode else PreferenceWeights(), settings=settings,
        output_dir=os.path.join(out, "trainer"), seed=0,
        training_overrides={"optim": "sgd", "disable_tqdm": True, "lr_scheduler_type": "constant"}, **kwargs,
    )
    trainer.train()
    rank = trainer.accelerator.process_index
    with open(os.path.join(out, f"w-rank{rank}.json"), "w") as handle:  # the preferences this rank drew
        json.dump([[row.get("w/a"), row.get("w/b")] for row in trainer.history], handle)
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        torch.save({n: p.detach().cpu() for n, p in model.named_parameters()}, os.path.join(out, "params.pt"))


def _run(args: list[str], env: dict) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_processes_equal_one_with_the_double_batch(tmp_path, tiny_lm_dir, variant):
    import torch

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _run([sys.executable, __file__, tiny_lm_dir, str(single), "4", variant], env)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          __file__, tiny_lm_dir, str(ddp), "2", variant], env)
    a, b = torch.load(single / "params.pt", weights_only=True), torch.load(ddp / "params.pt", weights_only=True)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)
    if VARIANTS[variant][0] is None:
        drawn = [json.loads((folder / f"w-rank{r}.json").read_text()) for folder, r in [(single, 0), (ddp, 0), (ddp, 1)]]
        assert len(drawn[0]) == 3 and len({tuple(w) for w in drawn[0]}) == 3  # a new w each step
        # the history is averaged over the ranks: per step, both ranks log the one-process value (per pair:
        # the mean of the two halves' means is the mean of the single process's draw)
        assert drawn[1] == drawn[2]
        for step in range(3):
            assert drawn[1][step] == pytest.approx(drawn[0][step], abs=1e-12)


if __name__ == "__main__":
    train_and_save(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
    # skip interpreter teardown: a gloo thread still alive there aborts the process now and then ("terminate
    # called without an active exception"), and destroy_process_group() here hung under load; all files are closed
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
