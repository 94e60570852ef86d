"""MORLHF end to end through the CLI on the embedded task: one GRPO model per preference, evaluated; a run
killed after checkpoint 2 resumes (mid-epoch) to the uninterrupted run's weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from conftest import TrainerHooks
from e2e_overrides import SMALL_EVAL
from moalign.cli import main
from moalign.eval.family import CheckpointFamily, load_family
from moalign.eval.harness import load_metrics

pytestmark = pytest.mark.slow

CONFIG = "configs/embedded/morlhf.yaml"
SMALL = [
    *SMALL_EVAL,
    "eval.grid=list:1,0;0,1",
    "method.max_prompts=16",
    "method.grpo.max_completion_length=8",
    "method.train.max_steps=4",
    "method.train.save_steps=2",
    "method.train.per_device_train_batch_size=8",
]


def test_cli_run_is_evaluated_and_a_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", "morlhf", CONFIG, f"run_dir={straight}", *SMALL]) == 0
    family = load_family(straight)
    assert isinstance(family, CheckpointFamily) and family.name == "morlhf" and len(family.checkpoints) == 2
    metrics = load_metrics(straight)["metrics"]
    assert metrics["n_points"]["value"] == 2 and metrics["hypervolume"]["value"] >= 0
    assert (straight / "train" / "w=1.00,0.00" / "history.jsonl").is_file()

    hooks = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer")
    fired = hooks.kill_after(2)
    with pytest.raises(hooks.Killed):
        main(["train", "morlhf", CONFIG, f"run_dir={killed}", *SMALL])
    hooks.clear()
    steps = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer").record_steps()
    assert main(["train", "morlhf", CONFIG, f"run_dir={killed}", *SMALL]) == 0
    assert steps[fired[0]] == [3, 4]  # resumed after the step-2 checkpoint, not from step 0
    for tag in ("w=0.00,1.00", "w=1.00,0.00"):
        a = load_file(straight / "train" / tag / "model.safetensors")
        b = load_file(killed / "train" / tag / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
