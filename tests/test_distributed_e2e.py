"""Pipelines under ``torchrun --nproc_per_node 2`` (Gloo, CPU) on the embedded task, each against the same run
in one process: an evaluation (identical generations, scores and metrics), ParetoHqD (identical selections;
weights and training metrics within float tolerance, as data parallelism averages them), DPO (the same), and
a rank SIGKILLed mid-training whose relaunch resumes from the last checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

SMALL_EVAL = ["task.num_test_prompts=4", "eval.stats_samples=40", "eval.progress=false", "eval.samples_per_point=1",
              "eval.generation.max_new_tokens=12", "eval.generation.batch_size=2"]
PARETOHQD = ["eval.grid=list:0,1;0.5,0.5;1,0", "method.train.max_steps=4", "method.stage2_train.max_steps=2",
             "method.stage2_prompts=8"]
DPO = ["eval.grid=list:1,0;0,1", "method.train.max_steps=4", "method.pairs.max_pairs_per_objective=32",
       "method.train.max_length=96"]
KILLER = Path(__file__).parent / "distributed" / "train_killing_a_rank.py"


def moalign(*args: str, nproc: int = 1, script: Path | None = None, env: dict | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    entry = [str(script)] if script else ["-m", "moalign"]
    launch = [sys.executable, *entry] if nproc == 1 and not script else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *entry]
    return subprocess.run([*launch, *args], env=env, capture_output=True, text=True, timeout=900)


def ok(done) -> None:
    assert done.returncode == 0, done.stderr[-4000:]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(next(folder.glob("*.safetensors")))


def _close_weights(a: Path, b: Path, atol: float) -> None:
    x, y = _weights(a), _weights(b)
    assert x.keys() == y.keys()
    assert max(float((x[k] - y[k]).abs().max()) for k in x) <= atol


def _history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def _accelerate(*args: str):
    """``accelerate launch`` with the shipped 2-process CPU config, on a free port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/multi_cpu.yaml",
               "--main_process_port", str(port), "-m", "moalign", *args]
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_an_evaluation_on_two_processes_equals_the_one_process_run(tmp_path, launcher):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["eval", "configs/embedded/eval_base.yaml", *SMALL_EVAL, "eval.grid=list:0,1;1,0"]
    ok(moalign(*args, f"run_dir={one}"))
    done = moalign(*args, f"run_dir={two}", nproc=2) if launcher == "torchrun" else _accelerate(*args, f"run_dir={two}")
    ok(done)
    assert done.stdout.count("report:") == 1  # the summary is printed once, by the main rank
    files = sorted(p.relative_to(one) for p in one.glob("eval/**/*.jsonl"))
    assert files and all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    metrics = [json.loads((r / "eval/metrics/metrics.json").read_text())["metrics"] for r in (one, two)]
    assert metrics[0] == metrics[1]


def test_paretohqd_on_two_processes_selects_the_same_data_and_trains_the_same_models(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    config = "configs/embedded/paretohqd.yaml"
    ok(moalign("train", "paretohqd", config, f"run_dir={one}", *SMALL_EVAL, *PARETOHQD))
    halves = ["method.train.per_device_train_batch_size=4", "method.stage2_train.per_device_train_batch_size=4"]
    ok(moalign("train", "paretohqd", config, f"run_dir={two}", *SMALL_EVAL, *PARETOHQD, *halves, nproc=2))
    stages = [sorted(p.parent.relative_to(r) for p in r.rglob("_stage.json")) for r in (one, two)]
    assert stages[0] == stages[1]
    for name in ("select/selection.json", "select2/selection.json", "score/responses.jsonl"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    for folder in sorted((one / "stage1").iterdir()) + sorted((one / "stage2").iterdir()):
        _close_weights(folder, two / folder.relative_to(one), atol=1e-3)


def test_dpo_on_two_processes_trains_the_same_models_with_the_same_logged_losses(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    ok(moalign("train", "dpo", "configs/embedded/dpo.yaml", f"run_dir={one}", *SMALL_EVAL, *DPO))
    ok(moalign("train", "dpo", "configs/embedded/dpo.yaml", f"run_dir={two}", *SMALL_EVAL, *DPO,
               "method.train.per_device_train_batch_size=4", nproc=2))
    assert (one / "pairs/pairs.jsonl").read_bytes() == (two / "pairs/pairs.jsonl").read_bytes()
    for tag in ("w=1.00,0.00", "w=0.00,1.00"):
        _close_weights(one / "train" / tag, two / "train" / tag, atol=1e-4)
        rows = zip(_history(one / "train" / tag), _history(two / "train" / tag), strict=True)
        for a, b in rows:  # the ranks' halves averaged: the one-process mean of the batch
            losses = [k for k in a if k.startswith(("loss/", "logratio_gap/"))]
            assert losses and all(abs(a[k] - b[k]) < 1e-4 for k in losses)


def test_a_rank_killed_mid_training_leaves_no_half_stage_and_the_relaunch_resumes(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = ["train", "dpo", "configs/embedded/dpo.yaml", *SMALL_EVAL, *DPO, "method.train.save_steps=2",
            "method.train.per_device_train_batch_size=4"]
    ok(moalign(*args, f"run_dir={straight}", "--no-eval", nproc=2))
    crash = moalign(*args, f"run_dir={killed}", "--no-eval", nproc=2, script=KILLER,
                    env={"KILL_RANK": "1", "KILL_STEP": "3"})
    assert crash.returncode != 0
    first = killed / "train" / "w=1.00,0.00"
    assert not first.exists()  # no half stage
    checkpoints = list((killed / "_checkpoints").glob("*/checkpoint-2"))
    assert len(checkpoints) == 1
    done = moalign(*args, f"run_dir={killed}", "--no-eval", nproc=2)
    ok(done)
    assert "removed an unfinished attempt" in done.stdout + done.stderr
    steps = [row["step"] for row in _history(first)]
    assert steps == [1, 2, 3, 4]  # the history of the resumed run is the uninterrupted one's
    for tag in ("w=1.00,0.00", "w=0.00,1.00"):
        a, b = _weights(straight / "train" / tag), _weights(killed / "train" / tag)
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not list(killed.rglob("*.partial"))
