"""The README's main command, shrunk: both methods train, evaluate on one grid, and one report compares them."""

import json

import pytest

from moalign.demo import run_demo


@pytest.mark.slow
def test_demo_trains_both_methods_and_writes_one_comparison_report(tmp_path, capfd):
    from moalign.console import quiet_output
    from moalign.eval.report import metrics_table

    overrides = ["task.num_test_prompts=4", "method.train.max_steps=3", "eval.grid=simplex:2"]
    capfd.readouterr()
    with quiet_output():  # as `moalign demo` runs it
        report, timings = run_demo(tmp_path, ["paretohqd", "ric"], overrides)
    captured = capfd.readouterr()
    lines = (captured.out + captured.err).count("\n")
    assert lines < 200, f"the demo printed {lines} lines"  # full-size `make demo`: see docs/cli.md, Output
    table = metrics_table([tmp_path / "paretohqd", tmp_path / "ric"])
    assert table.splitlines()[0].split() == ["run", "paretohqd", "ric"]
    assert captured.out.endswith(f"\n\n{table}\nreport: {report / 'index.html'}\n")
    assert {"paretohqd: train", "ric: train", "paretohqd: evaluate", "ric: evaluate"} <= set(timings)
    metrics = json.loads((report / "metrics.json").read_text())
    assert [run["label"] for run in metrics["runs"]] == ["paretohqd", "ric"]
    assert all(len(run["points"]) == 3 for run in metrics["runs"])  # simplex:2 -> (0,1), (.5,.5), (1,0)
    for name in ["fronts.png", "metrics.md", "index.html"]:
        assert (report / name).stat().st_size > 0
    # a rerun resumes: every stage is already done, so nothing trains again
    _, again = run_demo(tmp_path, ["paretohqd", "ric"], overrides)
    assert again["paretohqd: train"] < timings["paretohqd: train"] / 2


def test_a_bad_override_fails_before_any_method_trains(tmp_path):
    from moalign.config import ConfigError

    # the second method's config is wrong: the first must not train either
    with pytest.raises(ConfigError, match=r"task.rewards\[1\]='(\./)?not_a_model': no such folder"):
        run_demo(tmp_path / "demo", ["paretohqd", "dpo"], ["task.rewards=[positivity,hf:./not_a_model]"])
    # valid for dpo (first), an unknown key for paretohqd (second): dpo must not train either
    with pytest.raises(ConfigError, match="paretohqd.yaml: method: unknown key 'beta'"):
        run_demo(tmp_path / "demo", ["dpo", "paretohqd"], ["method.beta=0.5"])
    with pytest.raises(ConfigError, match="method.beta=0.0"):
        run_demo(tmp_path / "demo", ["dpo"], ["method.beta=0"])
    assert not (tmp_path / "demo").exists()


def test_the_demo_reaches_methods_only_through_the_registry():
    import ast
    import inspect

    import moalign.demo

    tree = ast.parse(inspect.getsource(moalign.demo))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    # the registry and the method-agnostic runner; never a method's own package
    assert {m for m in imported if m.startswith("moalign.methods")} == {
        "moalign.methods.registry", "moalign.methods.train_run"}
