"""Z-score statistics (fit, transform, save/load with objective names) and RiC's rounding, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moalign.rewards import ZScore, fit_ric_stats, ric_normalize, round_scores

# 2 objectives, 4 responses; column means 2 and 12, population stds sqrt(2.5)=1.5811.. and 2
SCORES = np.array([[0.0, 10.0], [1.0, 14.0], [3.0, 10.0], [4.0, 14.0]])


def test_fit_and_transform_by_hand():
    stats = ZScore().fit(SCORES, ["harmless", "helpful"])
    np.testing.assert_allclose(stats.mean, [2.0, 12.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(2.5), 2.0])
    z = stats.transform([[2.0, 16.0], [2.0 + np.sqrt(2.5), 12.0]])
    np.testing.assert_allclose(z, [[0.0, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(stats.inverse_transform(stats.transform(SCORES)), SCORES)
    np.testing.assert_allclose(stats.transform([2.0, 10.0]), [0.0, -1.0])  # a single point works too


def test_objectives_given_at_construction_are_used_by_fit():
    stats = ZScore(["harmless", "helpful"]).fit(SCORES)
    assert stats.objectives == ["harmless", "helpful"]
    with pytest.raises(ValueError, match="2 objective names for 3 columns"):
        ZScore(["a", "b"]).fit(np.ones((2, 3)) * [[1.0], [2.0]])


def test_transform_does_not_modify_input():
    stats, before = ZScore().fit(SCORES), SCORES.copy()
    stats.transform(SCORES)
    np.testing.assert_array_equal(SCORES, before)


def test_save_load_round_trip_and_reuse(tmp_path):
    stats = ZScore().fit(SCORES, ["harmless", "helpful"])
    path = stats.save(tmp_path / "stats" / "reward_stats.json")
    saved = json.loads(path.read_text())
    assert saved["objectives"] == ["harmless", "helpful"] and saved["n"] == 4
    loaded = ZScore.load(path, objectives=["harmless", "helpful"])
    online = np.array([[5.0, 9.0]])  # later scoring reuses the train stats, not its own
    np.testing.assert_allclose(loaded.transform(online), stats.transform(online))
    np.testing.assert_allclose(loaded.transform(online), [[3.0 / np.sqrt(2.5), -1.5]])


def test_objective_mismatch_is_refused(tmp_path):
    path = ZScore().fit(SCORES, ["harmless", "helpful"]).save(tmp_path / "s.json")
    with pytest.raises(ValueError, match=r"fitted for objectives \['harmless', 'helpful'\]"):
        ZScore.load(path, objectives=["helpful", "harmless"])
    swapped = ZScore.load(path).select(["helpful", "harmless"])
    np.testing.assert_allclose(swapped.mean, [12.0, 2.0])
    with pytest.raises(ValueError, match="no stats for \\['humor'\\]"):
        ZScore.load(path).select(["humor"])


def test_width_mismatch_and_unfitted_errors():
    stats = ZScore().fit(SCORES)
    with pytest.raises(ValueError, match="fitted on 2 objectives"):
        stats.transform(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        ZScore().transform(SCORES)


def test_constant_objective_is_a_clear_error():
    with pytest.raises(ValueError, match="objective 'brevity' has standard deviation 0"):
        ZScore().fit([[1.0, 3.0], [2.0, 3.0]], ["positivity", "brevity"])
    with pytest.raises(ValueError, match="NaN"):
        ZScore().fit([[1.0], [np.nan]])


def test_round_scores_is_half_to_even_like_numpy():
    # 0.25 and 0.75 are exact binary halves: half to even gives 0.2 and 0.8
    np.testing.assert_allclose(round_scores([0.25, 0.75, -1.26, 2.04]), [0.2, 0.8, -1.3, 2.0])
    np.testing.assert_allclose(round_scores([[1.234]], decimals=2), [[1.23]])


def test_ric_normalize_with_paper_harmless_stats():
    """RiC issue #16: harmless mu/sigma = (-0.9473, 1.9203); round raw to 0.1, normalise, round again."""
    stats = ZScore(["harmless"], mean=[-0.9473], std=[1.9203])
    raw = np.array([[1.234], [-3.06], [0.0], [2.04]])
    # 1.234 -> 1.2 -> 2.1473/1.9203 = 1.1182 -> 1.1;  -3.06 -> -3.1 -> -2.1527/1.9203 = -1.1210 -> -1.1
    # 0.0 -> 0.9473/1.9203 = 0.4933 -> 0.5;  2.04 -> 2.0 -> 2.9473/1.9203 = 1.5348 -> 1.5
    np.testing.assert_allclose(ric_normalize(raw, stats), [[1.1], [-1.1], [0.5], [1.5]])
    # without the first rounding 2.04 gives 2.9873/1.9203 = 1.5556 -> 1.6 (RiC's online path)
    assert ric_normalize([[2.04]], stats, round_raw=False)[0, 0] == pytest.approx(1.6)


def test_ric_normalize_with_paper_helpful_stats():
    stats = ZScore(["helpful"], mean=[-0.0150], std=[1.4074])
    # 0.76 -> 0.8 -> 0.815/1.4074 = 0.5791 -> 0.6;  -2.0 -> -1.985/1.4074 = -1.4104 -> -1.4
    np.testing.assert_allclose(ric_normalize([[0.76], [-2.0]], stats), [[0.6], [-1.4]])


def test_ric_offline_labels_can_stay_unrounded():
    """RiC keeps offline z-scores unrounded (its quantile filter reads them so); the prompt rounds them."""
    stats = ZScore(["harmless"], mean=[-0.9473], std=[1.9203])
    z = ric_normalize([[1.234], [0.0]], stats, round_z=False)
    np.testing.assert_allclose(z, [[2.1473 / 1.9203], [0.9473 / 1.9203]])
    np.testing.assert_array_equal(np.round(z, 1), ric_normalize([[1.234], [0.0]], stats))


def test_fit_ric_stats_uses_rounded_raw():
    raw = np.array([[0.04], [0.96], [2.04]])  # rounds to 0.0, 1.0, 2.0: mean 1, population std sqrt(2/3)
    stats = fit_ric_stats(raw, ["x"])
    np.testing.assert_allclose(stats.mean, [1.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(2.0 / 3.0)])
