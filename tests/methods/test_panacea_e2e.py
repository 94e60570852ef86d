"""Panacea end to end through the CLI on the embedded task (DPO, SFT and RLHF variants): train one SVD-LoRA
model, evaluate its front by setting lambda per preference, and resume a killed run to the uninterrupted run's
weights (and, online, its lambda sequence)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TrainerHooks
from e2e_overrides import SMALL_EVAL
from moalign.cli import main
from moalign.eval.family import load_family
from moalign.eval.harness import load_metrics
from moalign.methods.panacea import PanaceaFamily

pytestmark = pytest.mark.slow

CONFIG = "configs/embedded/panacea.yaml"
SFT_CONFIG = "configs/embedded/panacea_sft.yaml"
RLHF_CONFIG = "configs/embedded/panacea_rlhf.yaml"
SMALL = [
    *SMALL_EVAL,
    "eval.grid=list:1,0;0.5,0.5;0,1",
    "method.pairs.max_pairs_per_objective=24",
    "method.train.max_steps=4",
    "method.train.save_steps=2",
    "method.train.per_device_train_batch_size=4",
    "method.train.max_length=96",
]


def _adapter(run_dir: Path, stage: str) -> dict:
    return load_file(run_dir / "train" / stage / "adapter_model.safetensors")


@pytest.mark.parametrize("variant, aggregation", [("dpo", "ls"), ("dpo", "tche"), ("sft", "ls")])
def test_cli_run_is_evaluated_and_a_killed_run_resumes_to_the_same_weights(tmp_path, request, variant, aggregation):
    hooks = request.getfixturevalue("preference_hooks" if variant == "dpo" else "response_hooks")
    config = CONFIG if variant == "dpo" else SFT_CONFIG
    stage = f"panacea-{aggregation}" if variant == "dpo" else f"panacea-sft-{aggregation}"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    common = [*SMALL, f"method.aggregation={aggregation}"]
    assert main(["train", "panacea", config, f"run_dir={straight}", *common]) == 0

    family = load_family(straight)
    assert isinstance(family, PanaceaFamily) and family.name == stage
    metrics = load_metrics(straight)["metrics"]
    assert metrics["n_points"]["value"] == 3  # one front point per evaluated preference, from the one model
    assert metrics["hypervolume"]["value"] >= 0

    fired = hooks.kill_after(2)
    with pytest.raises(hooks.Killed):
        main(["train", "panacea", config, f"run_dir={killed}", *common])
    assert fired and not (killed / "train" / stage).exists()
    hooks.clear()
    steps = hooks.record_steps()
    assert main(["train", "panacea", config, f"run_dir={killed}", *common]) == 0
    assert steps[fired[0]] == [3, 4]  # resumed after the step-2 checkpoint, not from step 0
    a, b = _adapter(straight, stage), _adapter(killed, stage)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


RLHF_SMALL = [
    *SMALL_EVAL,
    "eval.grid=list:1,0;0.5,0.5;0,1",
    "method.max_prompts=16",
    "method.grpo.max_completion_length=8",
    "method.train.max_steps=4",
    "method.train.save_steps=2",
    "method.train.logging_steps=1",
    "method.train.per_device_train_batch_size=8",
]


def _lambdas(run_dir: Path) -> list[list[float]]:
    history = run_dir / "train" / "panacea-rlhf-ls" / "history.jsonl"
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    return [[r["preference/positivity"], r["preference/brevity"]] for r in rows if "loss" in r]


def test_rlhf_cli_run_is_evaluated_and_a_killed_run_resumes_to_the_same_adapter_and_lambdas(tmp_path, monkeypatch):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", "panacea", RLHF_CONFIG, f"run_dir={straight}", *RLHF_SMALL]) == 0
    family = load_family(straight)
    assert isinstance(family, PanaceaFamily) and family.name == "panacea-rlhf-ls"
    metrics = load_metrics(straight)["metrics"]
    assert metrics["n_points"]["value"] == 3 and metrics["hypervolume"]["value"] >= 0
    lambdas = _lambdas(straight)
    assert len(lambdas) == 4 and len({tuple(lam) for lam in lambdas}) == 4  # a fresh lambda every step

    hooks = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer")
    fired = hooks.kill_after(2)
    with pytest.raises(hooks.Killed):
        main(["train", "panacea", RLHF_CONFIG, f"run_dir={killed}", *RLHF_SMALL])
    assert fired and not (killed / "train" / "panacea-rlhf-ls").exists()
    hooks.clear()
    steps = TrainerHooks(monkeypatch, "moalign.train.online", "build_grpo_trainer").record_steps()
    assert main(["train", "panacea", RLHF_CONFIG, f"run_dir={killed}", *RLHF_SMALL]) == 0
    assert steps[fired[0]] == [3, 4]  # resumed after the step-2 checkpoint, not from step 0
    a, b = _adapter(straight, "panacea-rlhf-ls"), _adapter(killed, "panacea-rlhf-ls")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _lambdas(killed) == lambdas  # the same lambda sequence, steps 3 and 4 drawn after the resume
