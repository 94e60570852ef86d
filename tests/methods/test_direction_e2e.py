"""Trained families point where they were asked to: on the embedded task (pre-trained tiny model, shipped
configs), the policy for w = (1, 0) scores higher on objective 0 (positivity) than the policy for (0, 1), and
lower on objective 1 (brevity), by more than the sampling noise. Finiteness alone would pass a family whose
preference input does nothing; these tests fail then.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moalign.config import load_run_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXTREMES = "list:1,0;0,1"
SHORTER = {
    "paretohqd": ["method.stage2=false", "method.train.max_steps=40"],
    "ric": [],  # the shipped config as is: offline SFT + one MORS round
    "dpo_lw": ["method.train.max_steps=40", "eval.win_rate=false"],
}


@pytest.mark.parametrize("method", sorted(SHORTER))
def test_the_family_for_each_extreme_preference_wins_on_its_objective(method, tmp_path):
    from moalign.methods.registry import get_method
    from moalign.methods.train_run import train_method

    overrides = [f"run_dir={tmp_path / method}", f"eval.grid={EXTREMES}", "task.num_test_prompts=128",
                 "eval.progress=false", *SHORTER[method]]
    config = load_run_config(ROOT / "configs" / "embedded" / f"{method}.yaml", overrides, get_method(method).config_cls)
    points = {tuple(p["w"]): p for p in train_method(method, config, evaluate=True)["metrics"]["points"]}
    first, second = points[(1.0, 0.0)], points[(0.0, 1.0)]
    for objective, (winner, loser) in enumerate([(first, second), (second, first)]):
        gap = winner["mean"][objective] - loser["mean"][objective]
        noise = float(np.hypot(winner["se"][objective], loser["se"][objective]))
        assert gap > 2 * noise, (method, objective, winner["mean"], loser["mean"], noise)
