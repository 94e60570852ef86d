"""Pipelines under ``torchrun --nproc_per_node 2`` (Gloo, CPU) on the embedded task, each against the same run
in one process: an evaluation (identical generations, scores and metrics), ParetoHqD (identical selections;
weights and training metrics within float tolerance, as data parallelism averages them), DPO (the same),
a rank SIGKILLed mid-training whose relaunch resumes from the last checkpoint; the preference trainer under FSDP2
(configs/accelerate/fsdp.yaml; sharded, equal to one process, resumed after a kill; MGDA's sharded gradients
equal to one process) and under DeepSpeed ZeRO-2/3 (the same, on Gloo), MGDA under ZeRO-1/2 equal to one process
and refused under ZeRO-3; and
every other method's pipeline completing under two processes (a smoke run each)."""

from __future__ import annotations

import importlib.util
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
HOOKS = Path(__file__).parent / "distributed" / "moalign_with_hooks.py"


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


def _accelerate(*args: str, config: str = "multi_cpu", script: Path | None = None, env: dict | None = None,
                launch: list[str] | None = None):
    """``accelerate launch`` with a shipped config on 2 CPU processes, on a free port (``launch``: more flags)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    entry = [str(script)] if script else ["-m", "moalign"]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", f"configs/accelerate/{config}.yaml",
               "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(port), *(launch or []),
               *entry, *args]
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True,
                          text=True, timeout=900)


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
    # stage 2's data: generated by the stage-1 models (equal to float tolerance) with each rank decoding its
    # share of the batches, the same texts as one process
    for name in ("select/selection.json", "score/responses.jsonl", "generate2/generated.jsonl",
                 "select2/selection.json"):
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
    crash = moalign(*args, f"run_dir={killed}", "--no-eval", nproc=2, script=HOOKS,
                    env={"KILL_RANK": "1", "KILL_STEP": "3"})
    assert crash.returncode != 0
    first = killed / "train" / "w=1.00,0.00"
    assert not first.exists()  # no half stage (a temporary folder may stay, when rank 0 was stopped before it
    # could remove its own; the relaunch removes it)
    checkpoints = list((killed / "_checkpoints").glob("*/checkpoint-2"))
    assert len(checkpoints) == 1
    record = tmp_path / "steps.txt"
    ok(moalign(*args, f"run_dir={killed}", "--no-eval", nproc=2, script=HOOKS, env={"RECORD_STEPS": str(record)}))
    runs = [line.split() for line in record.read_text().splitlines()]
    for rank in ("0", "1"):  # the killed expert resumed after checkpoint 2 on both ranks; the other ran whole
        assert [int(s) for i, r, s in runs if i == "0" and r == rank] == [3, 4]
        assert [int(s) for i, r, s in runs if i == "1" and r == rank] == [1, 2, 3, 4]
    steps = [row["step"] for row in _history(first)]
    assert steps == [1, 2, 3, 4]  # the history of the resumed run is the uninterrupted one's
    for tag in ("w=1.00,0.00", "w=0.00,1.00"):
        a, b = _weights(straight / "train" / tag), _weights(killed / "train" / tag)
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not list(killed.rglob("*.partial"))


DPO_LW = ["train", "dpo_lw", "configs/embedded/dpo_lw.yaml", *SMALL_EVAL, "eval.grid=list:0.5,0.5;1,0",
          "method.train.max_steps=4", "method.pairs.max_pairs_per_objective=32", "method.train.max_length=96",
          "--no-eval"]
FSDP_ON_CPUS = {"CPU_FSDP": "1"}  # accelerate's gate lifted (tests/distributed/moalign_with_hooks.py)


@pytest.fixture(scope="module")
def dpo_lw_in_one_process(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("dpo_lw") / "one"
    ok(moalign(*DPO_LW, f"run_dir={run_dir}"))
    return run_dir


def test_the_preference_trainer_under_fsdp_shards_the_model_and_trains_the_one_process_models(
        tmp_path, dpo_lw_in_one_process):
    """configs/accelerate/fsdp.yaml (FSDP2) on 2 CPU processes: each rank holds half of every parameter, and
    the two-objective DPO-LW models and losses equal one process's to float tolerance."""
    one, two, sharding = dpo_lw_in_one_process, tmp_path / "fsdp", tmp_path / "sharding.jsonl"
    ok(_accelerate(*DPO_LW, f"run_dir={two}", "method.train.per_device_train_batch_size=4", config="fsdp",
                   script=HOOKS, env={**FSDP_ON_CPUS, "RECORD_SHARDING": str(sharding)}))
    ranks = [json.loads(line) for line in sharding.read_text().splitlines()]
    assert sorted(r["rank"] for r in ranks) == [0, 1] and all(r["fsdp"] and r["classes"] == ["DTensor"] for r in ranks)
    assert sum(r["local"] for r in ranks) == ranks[0]["total"] and all(r["local"] < r["total"] for r in ranks)
    for tag in ("w=0.50,0.50", "w=1.00,0.00"):
        _close_weights(one / "train" / tag, two / "train" / tag, atol=1e-4)  # saved whole (FULL_STATE_DICT)
        for a, b in zip(_history(one / "train" / tag), _history(two / "train" / tag), strict=True):
            losses = [k for k in a if k.startswith("loss/")]
            assert losses and all(abs(a[k] - b[k]) < 1e-4 for k in losses)


def test_a_rank_killed_under_fsdp_resumes_from_the_sharded_run_checkpoint(tmp_path, dpo_lw_in_one_process):
    killed, args = tmp_path / "killed", [*DPO_LW, "method.train.per_device_train_batch_size=4",
                                         "method.train.save_steps=2"]
    crash = _accelerate(*args, f"run_dir={killed}", config="fsdp", script=HOOKS,
                        env={**FSDP_ON_CPUS, "KILL_RANK": "1", "KILL_STEP": "3"})
    assert crash.returncode != 0 and not (killed / "train" / "w=0.50,0.50").exists()
    assert len(list((killed / "_checkpoints").glob("*/checkpoint-2/pytorch_model_fsdp.bin"))) == 1
    record = tmp_path / "steps.txt"
    ok(_accelerate(*args, f"run_dir={killed}", config="fsdp", script=HOOKS,
                   env={**FSDP_ON_CPUS, "RECORD_STEPS": str(record)}))
    runs = [line.split() for line in record.read_text().splitlines()]
    assert sorted(int(s) for i, r, s in runs if i == "0") == [3, 3, 4, 4]  # both ranks resumed after step 2
    for tag in ("w=0.50,0.50", "w=1.00,0.00"):
        _close_weights(dpo_lw_in_one_process / "train" / tag, killed / "train" / tag, atol=1e-4)


MGDA = ["train", "mgda", "configs/embedded/mgda.yaml", *SMALL_EVAL, "eval.grid=list:0.5,0.5", "method.train.max_steps=3",
        "method.pairs.max_pairs_per_objective=24", "--no-eval"]


def _same_mgda_steps(one: Path, two: Path, atol: float) -> None:
    """The same model and, at each of the 3 steps, the same two MGDA coefficients as the one-process run
    (measured within 2.3e-7: the Gram is accumulated in float64)."""
    _close_weights(one / "train" / "decoupled", two / "train" / "decoupled", atol=atol)
    rows = list(zip(_history(one / "train" / "decoupled"), _history(two / "train" / "decoupled"), strict=True))
    assert len(rows) == 3
    for a, b in rows:
        coefficients = [k for k in a if k.startswith("weight/")]
        assert len(coefficients) == 2 and all(abs(a[k] - b[k]) < 1e-6 for k in coefficients)


@pytest.fixture(scope="module")
def mgda_in_one_process(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("mgda") / "one"
    ok(moalign(*MGDA, f"run_dir={run_dir}"))
    return run_dir


@pytest.mark.parametrize(("per_device", "accumulation"), [(4, 1), (2, 2)])
def test_mgda_under_fsdp2_takes_the_one_process_steps_from_sharded_gradients(
        tmp_path, mgda_in_one_process, per_device, accumulation):
    """The per-objective gradient path under FSDP2: each rank's buffer holds its shard of every objective's
    gradient (half of the model's elements), the Gram matrix is summed over the shards, and the coefficients
    and the model are the one process's, also with two accumulated micro-batches per rank."""
    two, sharding = tmp_path / "fsdp", tmp_path / "sharding.jsonl"
    ok(_accelerate(*MGDA, f"run_dir={two}", f"method.train.per_device_train_batch_size={per_device}",
                   f"method.train.gradient_accumulation_steps={accumulation}", config="fsdp", script=HOOKS,
                   env={**FSDP_ON_CPUS, "RECORD_SHARDING": str(sharding)}))
    ranks = [json.loads(line) for line in sharding.read_text().splitlines()]
    assert all(r["fsdp"] and r["classes"] == ["DTensor"] and r["local"] < r["total"] for r in ranks)
    # measured 2.2e-6 (4.5e-6 with accumulation 2); a Gram not summed over the shards is 3.2e-4 away, an
    # accumulation micro-batch whose shard FSDP did not reduce 4.0e-4
    _same_mgda_steps(mgda_in_one_process, two, atol=3e-5)


needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="DeepSpeed is not installed (requirements.txt pins it)")


@needs_deepspeed
@pytest.mark.parametrize("stage", [2, 3])
def test_the_preference_trainer_under_deepspeed_zero_shards_and_trains_the_one_process_models(
        tmp_path, dpo_lw_in_one_process, stage):
    """configs/accelerate/zero{2,3}.yaml on 2 CPU processes (Gloo): each rank holds about half of the fp32
    master weights and optimiser states (ZeRO-2) or of every parameter (ZeRO-3), and the DPO-LW models and
    losses equal one process's to float tolerance."""
    one, two, sharding = dpo_lw_in_one_process, tmp_path / f"zero{stage}", tmp_path / "sharding.jsonl"
    ok(_accelerate(*DPO_LW, f"run_dir={two}", "method.train.per_device_train_batch_size=4", config=f"zero{stage}",
                   script=HOOKS, env={"RECORD_SHARDING": str(sharding)}))
    ranks = [json.loads(line) for line in sharding.read_text().splitlines()]
    assert sorted(r["rank"] for r in ranks) == [0, 1] and all(r["deepspeed"] and r["zero_stage"] == stage for r in ranks)
    assert all(r["total"] * 0.45 < r["local"] < r["total"] * 0.55 for r in ranks)  # half each, padded
    for tag in ("w=0.50,0.50", "w=1.00,0.00"):
        _close_weights(one / "train" / tag, two / "train" / tag, atol=3e-5)  # ZeRO-3: gathered whole to save
        for a, b in zip(_history(one / "train" / tag), _history(two / "train" / tag), strict=True):
            losses = [k for k in a if k.startswith("loss/")]
            assert losses and all(abs(a[k] - b[k]) < 1e-4 for k in losses)


@needs_deepspeed
def test_a_rank_killed_under_zero2_resumes_from_the_deepspeed_checkpoint(tmp_path, dpo_lw_in_one_process):
    killed, args = tmp_path / "killed", [*DPO_LW, "method.train.per_device_train_batch_size=4",
                                         "method.train.save_steps=2"]
    crash = _accelerate(*args, f"run_dir={killed}", config="zero2", script=HOOKS, env={"KILL_RANK": "1", "KILL_STEP": "3"})
    assert crash.returncode != 0 and not (killed / "train" / "w=0.50,0.50").exists()
    states = list((killed / "_checkpoints").glob("*/checkpoint-2/global_step2/zero_pp_rank_*_optim_states.pt"))
    assert len(states) == 2  # one optimiser partition per rank
    record = tmp_path / "steps.txt"
    ok(_accelerate(*args, f"run_dir={killed}", config="zero2", script=HOOKS, env={"RECORD_STEPS": str(record)}))
    runs = [line.split() for line in record.read_text().splitlines()]
    assert sorted(int(s) for i, r, s in runs if i == "0") == [3, 3, 4, 4]  # both ranks resumed after step 2
    for tag in ("w=0.50,0.50", "w=1.00,0.00"):
        _close_weights(dpo_lw_in_one_process / "train" / tag, killed / "train" / tag, atol=1e-4)


@needs_deepspeed
@pytest.mark.parametrize(("stage", "per_device", "accumulation"), [(1, 4, 1), (2, 4, 1), (2, 2, 2)])
def test_mgda_under_zero_1_and_2_takes_the_one_process_steps(tmp_path, mgda_in_one_process, stage, per_device,
                                                             accumulation):
    """The per-objective gradient path under ZeRO-1/2: the same MGDA coefficients at every step and the same
    model as one process (the combined gradient reaches ZeRO's partitioned optimiser through the engine), also
    when a step accumulates two micro-batches per rank (2 ranks x 2 x 2 = the one process's batch of 8)."""
    two = tmp_path / f"zero{stage}"
    ok(_accelerate(*MGDA, f"run_dir={two}", f"method.train.per_device_train_batch_size={per_device}",
                   f"method.train.gradient_accumulation_steps={accumulation}", config="zero2",
                   launch=["--zero_stage", str(stage)]))
    # measured 2.2e-6 (4.7e-6 with accumulation 2); a step that lost the gradient is 2e-4 away after 3 steps
    _same_mgda_steps(mgda_in_one_process, two, atol=3e-5)


@needs_deepspeed
def test_panacea_under_zero2_trains_the_one_process_svd_lora(tmp_path):
    """configs/real/panacea_pku_saferlhf.yaml recommends zero2.yaml: the SVD-LoRA adapter with the preference
    written into its singular values per step (the same Dirichlet draws on every rank) equals one process's."""
    args = ["train", "panacea", "configs/embedded/panacea.yaml", *SMALL_EVAL, "eval.grid=list:0,1;1,0",
            "method.train.max_steps=3", "method.pairs.max_pairs_per_objective=24", "--no-eval"]
    one, two = tmp_path / "one", tmp_path / "zero2"
    ok(moalign(*args, f"run_dir={one}"))
    ok(_accelerate(*args, f"run_dir={two}", "method.train.per_device_train_batch_size=4", config="zero2"))
    _close_weights(one / "train" / "panacea-ls", two / "train" / "panacea-ls", atol=3e-5)  # measured 8.4e-6
    for a, b in zip(_history(one / "train" / "panacea-ls"), _history(two / "train" / "panacea-ls"), strict=True):
        assert all(abs(a[k] - b[k]) < 1e-4 for k in a if k.startswith(("loss/", "weight/")))


@needs_deepspeed
def test_per_objective_gradients_are_refused_under_zero3_with_the_reason(tmp_path):
    done = _accelerate(*MGDA, f"run_dir={tmp_path / 'mgda'}", config="zero3")
    assert done.returncode != 0 and "per-objective gradients (MGDA family)" in done.stderr
    assert "DeepSpeed ZeRO-3 splits every parameter" in done.stderr.replace("\n", " ")


SMOKE = {  # the other pipelines, each at a few steps: every stage kind runs under two processes
    "modpo": ["method.train.max_steps=2", "method.pairs.max_pairs_per_objective=24", "eval.grid=list:0.5,0.5;1,0"],
    "mgda": ["method.train.max_steps=2", "method.pairs.max_pairs_per_objective=24", "eval.grid=list:0.5,0.5"],
    "panacea": ["method.train.max_steps=2", "method.pairs.max_pairs_per_objective=24", "eval.grid=list:0,1;1,0"],
    "soups": ["method.experts.train.max_steps=2", "method.experts.pairs.max_pairs_per_objective=24",
              "eval.grid=list:0,1;0.5,0.5"],
    "mod": ["method.experts.train.max_steps=2", "method.experts.pairs.max_pairs_per_objective=24",
            "eval.grid=list:0,1;0.5,0.5"],
    "sipo": ["method.experts.train.max_steps=8", "method.experts.reference=adapter", "method.max_conflicts=8",
             "method.sampling.max_new_tokens=16", "method.realign.train.max_steps=2",
             "method.realign.train.per_device_train_batch_size=4", "eval.grid=list:0,1;1,0"],
    "ric": ["method.train.max_steps=4", "method.online.train.max_steps=2", "method.online.num_prompts=8",
            "eval.grid=list:0,1;1,0"],
    "morlhf": ["method.train.max_steps=2", "method.max_prompts=16", "method.train.per_device_train_batch_size=4",
               "eval.grid=list:0,1"],
}


@pytest.mark.parametrize("method", list(SMOKE))
def test_every_other_pipeline_completes_under_two_processes(tmp_path, method):
    run_dir = tmp_path / method
    done = moalign("train", method, f"configs/embedded/{method}.yaml", f"run_dir={run_dir}", *SMALL_EVAL,
                   *SMOKE[method], nproc=2)
    ok(done)
    assert done.stdout.count("report:") == 1 and (run_dir / "family.json").is_file()
    metrics = json.loads((run_dir / "eval/metrics/metrics.json").read_text())["metrics"]
    assert metrics["n_points"]["value"] >= 1
    assert not (run_dir / "run.lock").exists() and not list(run_dir.rglob("*.partial"))
