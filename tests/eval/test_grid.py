"""One preference grid per run: its tags, and a training grid that misses an evaluation point refused early."""

import numpy as np
import pytest

from moalign.config import RunConfig
from moalign.eval.grid import PreferenceGrid, check_covers, eval_grid, training_grid


def _config(grid: str) -> RunConfig:
    config = RunConfig(run_dir="unused")
    config.task.objectives = ["a", "b"]
    config.eval.grid = grid
    return config


def test_tags_have_two_digits_unless_two_points_would_collide():
    assert PreferenceGrid.parse("simplex:2", 2).tags == ["w=0.00,1.00", "w=0.50,0.50", "w=1.00,0.00"]
    close = PreferenceGrid.parse("list:0.333,0.667;0.334,0.666", 2)
    assert close.digits == 4 and close.tags == ["w=0.3330,0.6670", "w=0.3340,0.6660"]
    assert close.tag([0.5, 0.5]) == "w=0.5000,0.5000"  # any w is spelled at the grid's digits
    assert len(close) == 2 and [list(w) for w in close] == [[0.333, 0.667], [0.334, 0.666]]


def test_training_grid_defaults_to_the_evaluation_grid_and_may_extend_it():
    config = _config("simplex:2")
    np.testing.assert_array_equal(training_grid(config, None).points, eval_grid(config).points)
    wider = training_grid(config, "simplex:4")
    assert len(wider) == 5 and "w=0.50,0.50" in wider.tags


def test_a_training_grid_that_misses_an_evaluation_point_is_refused_naming_it():
    config = _config("simplex:4")  # 0.25 steps
    with pytest.raises(ValueError, match=r"\[0.25, 0.75\].*eval.grid"):
        training_grid(config, "simplex:2")


def test_check_covers_tolerates_float_noise_only():
    evaluated = PreferenceGrid.from_points([[0.3, 0.7]])
    check_covers(PreferenceGrid.from_points([[0.1 + 0.2, 0.7]]), evaluated)  # 0.30000000000000004
    with pytest.raises(ValueError, match="no model"):
        check_covers(PreferenceGrid.from_points([[0.31, 0.69]]), evaluated)
