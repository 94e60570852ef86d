"""End to end on the embedded task: each DPO-family method trains a few steps and is evaluated by the harness.

Slow (the embedded model is built once per machine and cached; each test then takes well under a minute).
"""

from __future__ import annotations

import json

import pytest

from moalign.config import load_run_config
from moalign.methods.registry import get_method

pytestmark = pytest.mark.slow

COMMON = [
    "seed=0",
    "model.name_or_path=embedded",
    "task.name=embedded",
    "task.num_test_prompts=4",
    "eval.stats_samples=40",
    "eval.win_rate=true",
    "eval.progress=false",
    "eval.samples_per_point=1",
    "eval.generation.max_new_tokens=12",
    "method.pairs.max_pairs_per_objective=24",
    "method.train.max_steps=3",
    "method.train.per_device_train_batch_size=4",
    "method.train.max_length=96",
    "method.train.learning_rate=1e-4",
]


def run_method(tmp_path, method: str, overrides: list[str]) -> tuple[dict, object]:
    from moalign.methods.train_run import train_method

    spec = get_method(method)
    config = load_run_config(None, [f"run_dir={tmp_path / method}", *COMMON, *overrides], method_cls=spec.config_cls)
    summary = train_method(method, config, evaluate=True)
    return summary["metrics"], config


def _history(run_dir, stage):
    lines = (run_dir / stage / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_dpo_lw_end_to_end(tmp_path):
    metrics, config = run_method(tmp_path, "dpo_lw", ["eval.grid=list:1,0;0.5,0.5"])
    root = tmp_path / "dpo_lw"
    assert (root / "pairs" / "pairs_info.json").is_file()
    one_hot = _history(root, "train/w=1.00,0.00")
    assert len(one_hot) == 3  # w = e_1 trains on the positivity pairs alone: brevity's are never run
    assert all(row["weight/positivity"] == 1.0 and "loss/brevity" not in row for row in one_hot)
    assert _history(root, "train/w=0.50,0.50")[0]["weight/positivity"] == 0.5
    assert metrics


def test_dpo_end_to_end(tmp_path):
    metrics, _ = run_method(tmp_path, "dpo", ["eval.grid=list:1,0;0,1"])
    assert (tmp_path / "dpo" / "train" / "w=0.00,1.00" / "history.jsonl").is_file()
    assert metrics


@pytest.mark.parametrize("margin", ["dpo", "scores"])
def test_modpo_end_to_end(tmp_path, margin):
    overrides = ["eval.grid=list:0.5,0.5", f"method.margin={margin}", "method.margin_train.max_steps=3",
                 "method.margin_train.per_device_train_batch_size=4", "method.margin_train.max_length=96",
                 "method.margin_train.learning_rate=1e-3"]
    metrics, _ = run_method(tmp_path, "modpo", overrides)
    import numpy as np

    margins = np.load(tmp_path / "modpo" / "margins" / "margins.npy")
    assert margins.shape[1] == 2 and np.all(margins[:, 0] == 0) and np.any(margins[:, 1] != 0)
    assert (tmp_path / "modpo" / "margin" / "brevity").is_dir() == (margin == "dpo")
    assert metrics


@pytest.mark.parametrize("mode", ["decoupled", "groupdro"])
def test_mgda_end_to_end(tmp_path, mode):
    metrics, _ = run_method(tmp_path, "mgda", ["eval.grid=list:0.5,0.5", f"method.mode={mode}"])
    rows = _history(tmp_path / "mgda", f"train/{mode}")
    assert len(rows) == 3
    for row in rows:
        assert row["weight/positivity"] + row["weight/brevity"] == pytest.approx(1.0)
        assert row["loss/positivity"] > 0 and row["loss/brevity"] > 0
    assert metrics
