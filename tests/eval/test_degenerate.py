"""Degenerate points (mostly collapsed responses) are flagged, left out of the front indicators unless asked,
and made loud: a warning naming the likely causes when every point is degenerate, marks in the report."""

import json
from contextlib import contextmanager

import numpy as np
import pytest

from moalign.config import ConfigError, EvalSettings
from moalign.eval.family import Policy, SharedModelFamily
from moalign.eval.harness import evaluate
from moalign.eval.metrics import (
    DegenerateResultWarning,
    controllability,
    degenerate_points,
    front_metrics,
    inner_product,
)
from moalign.eval.report import write_report
from moalign.models.load import load_tokenizer
from moalign.pareto import hypervolume, is_nondominated, spacing, sparsity
from moalign.pipeline import Run
from moalign.rewards.normalize import ZScore

from .conftest import CharCount, FixedTextModel, make_config

OBJ = ["a", "b"]
WS = np.array([[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
POINTS = np.array([[1.0, 3.0], [1.5, 1.5], [2.0, 2.0], [3.0, 1.0]])  # HV above (0, 0): 6.0
# a fifth, degenerate point that dominates all four: it alone would give HV 5 * 5 = 25
WS5, POINTS5, FLAGS5 = np.vstack([WS, [0.75, 0.25]]), np.vstack([POINTS, [5.0, 5.0]]), [False] * 4 + [True]


def test_degenerate_point_is_left_out_of_every_indicator_by_default():
    m = front_metrics(WS5, POINTS5, OBJ, hv_reference=[0.0, 0.0], degenerate=FLAGS5)
    assert m["hypervolume"]["value"] == pytest.approx(6.0) == hypervolume(POINTS, [0.0, 0.0])
    assert m["n_points"] == {"value": 5, "nondominated": 3}  # (5, 5) would dominate every other point
    assert m["spacing"]["value"] == pytest.approx(spacing(POINTS))
    assert m["sparsity"]["value"] == pytest.approx(sparsity(POINTS))
    assert m["controllability"]["value"] == pytest.approx(controllability(WS, POINTS, OBJ))
    assert m["inner_product"]["value"] == pytest.approx(inner_product(WS, POINTS))
    assert m["degenerate"] == {"value": 1, "points": [4], "excluded": [4], "included": False,
                               "indicators_over": "the 4 non-degenerate points of 5 (1 degenerate excluded)"}
    assert m["hypervolume"]["points"] == m["degenerate"]["indicators_over"]


def test_include_degenerate_measures_every_point():
    m = front_metrics(WS5, POINTS5, OBJ, hv_reference=[0.0, 0.0], degenerate=FLAGS5, include_degenerate=True)
    assert m["hypervolume"]["value"] == pytest.approx(25.0) == hypervolume(POINTS5, [0.0, 0.0])
    assert m["n_points"] == {"value": 5, "nondominated": 1}
    assert m["spacing"]["value"] == pytest.approx(spacing(POINTS5))
    assert m["degenerate"]["excluded"] == [] and m["degenerate"]["included"] is True
    plain = front_metrics(WS5, POINTS5, OBJ, hv_reference=[0.0, 0.0])  # no flags: every point, as before
    assert plain["hypervolume"]["value"] == pytest.approx(25.0) and plain["degenerate"]["value"] == 0


def test_exclusion_applies_to_the_z_scored_hypervolume_and_the_fallback_reference():
    stats = ZScore(mean=[1.0, 1.0], std=[2.0, 0.25], objectives=OBJ)
    m = front_metrics(WS5, POINTS5, OBJ, zscore=stats, degenerate=FLAGS5)
    assert m["hypervolume"]["value"] == pytest.approx(19.0)  # the four points' values (test_metrics.py)
    assert m["hypervolume_z"]["value"] == pytest.approx(38.0)
    far = np.vstack([POINTS, [-99.0, -99.0]])  # a degenerate outlier must not move the run-specific reference
    m = front_metrics(WS5, far, OBJ, degenerate=FLAGS5)
    assert m["hypervolume"]["reference"].tolist() == pytest.approx([0.8, 0.8])  # min(points) - 10% of their range


def test_every_point_degenerate_leaves_every_indicator_undefined():
    stats = ZScore(mean=[1.0, 1.0], std=[2.0, 0.25], objectives=OBJ)
    m = front_metrics(WS, POINTS, OBJ, zscore=stats, degenerate=[True] * 4, reference_front=POINTS)
    for name in ("hypervolume", "hypervolume_z", "igd", "spacing", "sparsity", "inner_product"):
        assert m[name]["value"] is None, name
    assert m["controllability"]["value"] == {"a": None, "b": None}
    assert m["n_points"] == {"value": 4, "nondominated": None}
    assert m["hypervolume"]["reference"].tolist() == [-5.0, 0.25]  # rule 2 needs no points: still recorded
    assert m["hypervolume_z"]["reference"].tolist() == [-3.0, -3.0]
    m = front_metrics(WS, POINTS, OBJ, degenerate=[True] * 4)  # rule 3 needs points: undefined as well
    assert m["hypervolume"]["reference"] is None and m["hypervolume"]["reference_rule"].startswith("undefined")
    m = front_metrics(WS, POINTS, OBJ, hv_reference=[0.0, 0.0], degenerate=[True] * 4, include_degenerate=True)
    assert m["hypervolume"]["value"] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="3 flags but there are 4 points"):
        front_metrics(WS, POINTS, OBJ, degenerate=[True] * 3)


def test_the_threshold_is_inclusive_and_checked_in_the_config():
    assert degenerate_points([0.0, 0.49, 0.5, 1.0], 0.5).tolist() == [False, False, True, True]
    assert degenerate_points([0.99, 1.0], 1.0).tolist() == [False, True]
    assert EvalSettings().degenerate_threshold == 0.5 and EvalSettings().include_degenerate is False
    for bad in (0, 0.0, 1.5, -0.1, True):
        with pytest.raises(ConfigError, match=r"eval\.degenerate_threshold=.*e\.g\. eval\.degenerate_threshold=0\.5"):
            EvalSettings(degenerate_threshold=bad)


class ScriptedFamily:
    """For w, every response is ``texts[tuple(w)]`` (an empty text: every response empty)."""

    name = "scripted"

    def __init__(self, tokenizer, texts):
        self.tokenizer, self.texts = tokenizer, texts

    @contextmanager
    def policy(self, w):
        yield Policy(FixedTextModel(self.tokenizer, self.texts[tuple(float(x) for x in w)]), self.tokenizer)

    def describe(self):
        return {"type": "test-scripted", "texts": {str(k): v for k, v in self.texts.items()}}


class Brevity:
    name = "brevity"

    def __call__(self, prompts, responses):
        return np.array([-len(r) / 10 for r in responses], dtype=float)


TEXTS = {(0.0, 1.0): "", (0.5, 0.5): "aa one two", (1.0, 0.0): "aaaa one two"}


def test_an_all_empty_point_is_flagged_and_left_out_of_the_hypervolume(tmp_path, tiny_lm_dir, prompts_file):
    config = make_config(tmp_path / "run", tiny_lm_dir, prompts_file, grid="list:0,1;0.5,0.5;1,0",
                         hv_reference=[-5.0, -5.0])
    config.task.objectives = ["a", "brevity"]
    family, rewards = ScriptedFamily(load_tokenizer(tiny_lm_dir), TEXTS), [CharCount("a", "a"), Brevity()]
    result = evaluate(config, family, Run(config.run_dir, echo=None), rewards)
    points, means = result["points"], np.array([p["mean"] for p in result["points"]])
    np.testing.assert_allclose(means, [[0.0, 0.0], [2.0, -1.0], [4.0, -1.2]])  # the empty answer is the briefest
    assert [p["degenerate"] for p in points] == [True, False, False]
    assert points[0]["collapse_rate"] == 1.0 and points[0]["collapse_reasons"] == {"short": 6}
    assert points[0]["main_collapse_reason"] == "short" and points[1]["main_collapse_reason"] is None
    m = result["metrics"]
    # (4, -1.2): 9 x 3.8 = 34.2; (2, -1): adds 7 x 0.2 = 1.4; the empty point's (0, 0) would add 5 x 1 = 5
    assert m["hypervolume"]["value"] == pytest.approx(35.6) == hypervolume(means[1:], [-5.0, -5.0])
    assert m["degenerate"]["keys"] == ["w=0.00,1.00"] and m["degenerate"]["excluded"] == [0]
    assert m["degenerate"]["threshold"] == 0.5 and m["degenerate"]["warning"] is None
    assert m["n_points"] == {"value": 3, "nondominated": 2}

    config.eval.include_degenerate = True  # only the metrics (and report) stage reruns
    messages = []
    result = evaluate(config, family, Run(config.run_dir, echo=messages.append), rewards)
    assert result["metrics"]["hypervolume"]["value"] == pytest.approx(40.6) == hypervolume(means, [-5.0, -5.0])
    assert result["metrics"]["n_points"]["nondominated"] == 3 and result["metrics"]["degenerate"]["included"] is True
    assert {m.split("]")[0][1:] for m in messages if "finished in" in m} == {"eval/metrics", "report"}


@pytest.fixture(scope="module")
def collapsed_and_fine(tmp_path_factory, tiny_lm_dir):
    """The base model with max_new_tokens=1 (every response one token: all collapsed), and with 8 tokens."""
    from .conftest import PROMPTS

    root = tmp_path_factory.mktemp("degenerate_runs")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    rewards = [CharCount("letters_e", "e"), CharCount("spaces", " ")]
    collapsed = make_config(root / "collapsed", tiny_lm_dir, str(prompts))
    collapsed.eval.generation.max_new_tokens = 1
    with pytest.warns(DegenerateResultWarning, match="collapsed: Every preference point is degenerate") as caught:
        collapsed_result = evaluate(collapsed, SharedModelFamily("base", tiny_lm_dir), Run(collapsed.run_dir, echo=None),
                                    rewards)
    fine = make_config(root / "fine", tiny_lm_dir, str(prompts))
    evaluate(fine, SharedModelFamily("base", tiny_lm_dir), Run(fine.run_dir, echo=None), rewards)
    return root, collapsed_result, str(caught[0].message)


def test_all_collapsed_run_warns_with_the_likely_causes_and_reports_nothing_good(collapsed_and_fine):
    _, result, warning = collapsed_and_fine
    for cause in ("prompt template", "chat template", "eval.generation.max_new_tokens", "stop string",
                  "end-of-sequence", "learning rate"):
        assert cause in warning
    m = result["metrics"]
    assert [p["collapse_rate"] for p in result["points"]] == [1.0, 1.0, 1.0]
    assert all(p["degenerate"] for p in result["points"])
    assert m["hypervolume"]["value"] is None and m["hypervolume"]["reference"] is None
    assert m["spacing"]["value"] is None and m["inner_product"]["value"] is None
    assert m["n_points"] == {"value": 3, "nondominated": None}
    assert m["degenerate"]["warning"] in warning and m["degenerate"]["value"] == 3


def test_a_resumed_evaluation_warns_again(collapsed_and_fine, tiny_lm_dir):
    root, _, _ = collapsed_and_fine
    config = make_config(root / "collapsed", tiny_lm_dir, str(root / "prompts.jsonl"))
    config.eval.generation.max_new_tokens = 1
    rewards = [CharCount("letters_e", "e"), CharCount("spaces", " ")]
    messages = []
    with pytest.warns(DegenerateResultWarning, match="Likely causes"):
        evaluate(config, SharedModelFamily("base", tiny_lm_dir), Run(config.run_dir, echo=messages.append), rewards)
    assert messages and all("skipped" in m for m in messages)  # nothing recomputed, still loud


def test_collapsed_run_is_flagged_in_the_report(collapsed_and_fine, tmp_path):
    root, _, _ = collapsed_and_fine
    own = (root / "collapsed" / "report" / "metrics.md").read_text()  # the run's own report stage
    assert "| ⚠ 3/3 excluded |" in own and "Likely causes" in own and "max_new_tokens is too small" in own
    out = write_report([root / "collapsed", root / "fine"], tmp_path / "rep")
    table = (out / "metrics.md").read_text()
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "⚠ 3/3 excluded" in rows["| collapsed"] and "| –/0 |" in rows["| collapsed"]  # no point left to count
    assert "| 0/3 |" in rows["| fine"] and "⚠" not in rows["| fine"]
    assert "**Warning** collapsed: 3/3 preference points are degenerate" in table and "**Warning** fine" not in table
    summary = json.loads((out / "metrics.json").read_text())
    fine = summary["runs"][1]
    shared = summary["comparison"]["hv_shared"]
    assert shared["value"]["collapsed"] is None  # undefined, not a good-looking number
    assert shared["reference"] == fine["metrics"]["hypervolume"]["reference"]  # the collapsed run has none
    assert summary["comparison"]["igd_union"]["value"]["collapsed"] is None
    page = (out / "index.html").read_text()
    assert page.count('class="warning"') == 1 and "Likely causes" in page
    assert page.count('class="degenerate"') == 3 and page.count('class="pt"') == 6


def test_the_command_line_summary_warns(collapsed_and_fine, tiny_lm_dir, monkeypatch, capsys):
    from moalign.eval import harness

    root, _, _ = collapsed_and_fine
    config = make_config(root / "collapsed", tiny_lm_dir, str(root / "prompts.jsonl"))
    config.eval.generation.max_new_tokens = 1
    monkeypatch.setattr(harness, "load_eval_config", lambda path, overrides: config)
    with pytest.warns(DegenerateResultWarning):
        assert harness.eval_command("unused.yaml", [], rewards=[CharCount("letters_e", "e"), CharCount("spaces", " ")]) == 0
    out = capsys.readouterr().out
    assert "hypervolume undefined" in out
    assert "WARNING: 3/3 preference points are degenerate (collapse rate >= 0.5): w=0.00,1.00, w=0.50,0.50, w=1.00,0.00" in out
    assert "WARNING: Every preference point is degenerate" in out


def test_the_plot_draws_degenerate_points_as_crosses_outside_the_front():
    from moalign.plot import FrontSeries, plot_fronts

    fig = plot_fronts([FrontSeries("m", WS5, POINTS5, degenerate=np.array(FLAGS5))], OBJ)
    ax = fig.axes[0]
    line = ax.lines[0]  # the front line joins the non-dominated non-degenerate points only
    keep = is_nondominated(POINTS)
    np.testing.assert_allclose(sorted(line.get_xdata()), sorted(POINTS[keep, 0]))
    crosses = [c for c in ax.collections if c.get_label() == "m: degenerate"]
    assert len(crosses) == 1 and crosses[0].get_offsets().tolist() == [[5.0, 5.0]]
    included = plot_fronts([FrontSeries("m", WS5, POINTS5, degenerate=np.array(FLAGS5), include_degenerate=True)], OBJ)
    assert included.axes[0].lines[0].get_xdata().tolist() == [5.0]  # (5, 5) dominates the rest
