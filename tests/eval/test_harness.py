"""The harness end to end on tiny models: a family with a known front, the base model alone, win rates,
resuming, and a config change that reruns only the stages it affects."""

import json

import numpy as np
import pytest

from moalign.eval.family import SharedModelFamily
from moalign.eval.harness import evaluate, load_eval_config
from moalign.eval.metrics import DegenerateResultWarning
from moalign.eval.rows import read_rows
from moalign.models.load import load_tokenizer
from moalign.pipeline import Run

from .conftest import CharCount, KnownFrontFamily, make_config


def test_a_family_with_a_known_front_gives_the_expected_hypervolume(tmp_path, tiny_lm_dir, prompts_file):
    # "aaaa bbbbbb" is two words, a "short" (collapsed) response: every point is degenerate, kept by request
    config = make_config(tmp_path / "run", tiny_lm_dir, prompts_file, grid="simplex:10", hv_reference=[0.0, 0.0],
                         include_degenerate=True)
    config.task.objectives = ["a", "b"]
    rewards = [CharCount("a", "a", 10.0), CharCount("b", "b", 10.0)]
    with pytest.warns(DegenerateResultWarning, match="Every preference point is degenerate"):
        result = evaluate(config, KnownFrontFamily(load_tokenizer(tiny_lm_dir)), Run(config.run_dir, echo=None), rewards)
    assert result["metrics"]["degenerate"]["included"] is True and result["metrics"]["degenerate"]["value"] == 11
    points = np.array([p["mean"] for p in result["points"]])
    ws = np.array([p["w"] for p in result["points"]])
    np.testing.assert_allclose(points, ws, atol=1e-12)  # every response hits its preference exactly
    np.testing.assert_allclose([p["se"] for p in result["points"]], 0.0, atol=1e-12)  # identical responses
    assert all(p["n"] == 6 for p in result["points"])
    m = result["metrics"]
    # points (i/10, 1 - i/10) above (0, 0): sum over i=1..10 of 0.1 * (1 - i/10) = 0.45
    assert m["hypervolume"]["value"] == pytest.approx(0.45)
    assert m["controllability"]["value"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    assert m["inner_product"]["value"] == pytest.approx(0.7)  # mean of w1^2 + w2^2 over the 11 points
    assert m["n_points"] == {"value": 11, "nondominated": 11}


def test_base_model_alone_gives_one_point_at_every_preference(tmp_path, tiny_lm_dir, prompts_file, rewards):
    config = make_config(tmp_path / "run", tiny_lm_dir, prompts_file, grid="simplex:4")
    run = Run(config.run_dir, echo=None)
    result = evaluate(config, SharedModelFamily("base", tiny_lm_dir), run, rewards)
    means = np.array([p["mean"] for p in result["points"]])
    assert len(means) == 5 and (means == means[0]).all()  # same policy, same seed: identical, not just close
    responses = {tuple(r["response"] for r in read_rows(run.root / "eval/generate" / p["key"] / "generations.jsonl"))
                 for p in result["points"]}
    assert len(responses) == 1
    m = result["metrics"]
    assert m["controllability"]["value"] == {"letters_e": None, "spaces": None}
    ref = np.array(m["hypervolume"]["reference"])
    assert m["hypervolume"]["value"] == pytest.approx(float(np.prod(means[0] - ref)))
    assert m["n_points"]["nondominated"] == 5  # equal points do not dominate each other
    assert (run.root / "report" / "index.html").is_file() and (run.root / "report" / "fronts.png").is_file()


def test_win_rate_against_golden_answers(tmp_path, tiny_lm_dir, prompts_file, rewards):
    config = make_config(tmp_path / "run", tiny_lm_dir, prompts_file, grid="list:1,0;0,1", win_rate=True)
    run = Run(config.run_dir, echo=None)
    result = evaluate(config, SharedModelFamily("base", tiny_lm_dir), run, rewards)
    win = result["metrics"]["win_rate"]
    assert win["swap"] is True and win["judge"]["judge"] == "reward" and win["against"] == "golden responses"
    golden = [r["golden"] for r in read_rows(run.root / "eval/prompts/prompts.jsonl")]
    rows = read_rows(run.root / "eval/score" / result["points"][0]["key"] / "rows.jsonl")
    diff = np.array([r["response"].count("e") - g.count("e") for r, g in zip(rows, golden)])
    expected = np.mean(diff > 0) - np.mean(diff < 0)
    assert win["value"]["letters_e"]["net"] == pytest.approx(expected)  # pooled over both (identical) w
    for rates in win["value"].values():
        assert rates["win"] + rates["tie"] + rates["loss"] == pytest.approx(1.0) and rates["n"] == 12


@pytest.mark.filterwarnings("ignore::moalign.eval.metrics.DegenerateResultWarning")  # max_new_tokens=4 collapses all
def test_a_changed_config_reruns_only_the_affected_stages(tmp_path, tiny_lm_dir, prompts_file, rewards):
    family = SharedModelFamily("base", tiny_lm_dir)
    config = make_config(tmp_path / "run", tiny_lm_dir, prompts_file)
    evaluate(config, family, Run(config.run_dir, echo=None), rewards)

    def rerun(**changes):
        messages = []
        for key, value in changes.items():
            target = config.eval.generation if key == "max_new_tokens" else config.eval
            setattr(target, key, value)
        evaluate(config, family, Run(config.run_dir, echo=messages.append), rewards)
        return {m.split("]")[0][1:] for m in messages if "finished in" in m}, messages

    ran, messages = rerun()
    assert ran == set() and sum("skipped" in m for m in messages) == 1 + 3 + 3 + 1 + 1
    ran, messages = rerun(hv_reference=[0.0, 0.0])
    assert ran == {"eval/metrics", "report"}
    assert any("[eval/metrics] rerunning: input(s) changed: hv_reference null -> [0.0, 0.0]" in m for m in messages)
    ran, messages = rerun(max_new_tokens=4)
    assert ran == {f"eval/{s}/w={w}" for s in ("generate", "score") for w in ("0.00,1.00", "0.50,0.50", "1.00,0.00")} | {"eval/metrics", "report"}
    assert any("generation.max_new_tokens 8 -> 4" in m for m in messages)


def test_golden_answers_are_required_for_win_rate(tmp_path, tiny_lm_dir, rewards):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "\n\nHuman: hi\n\nAssistant:"}) + "\n")
    config = make_config(tmp_path / "run", tiny_lm_dir, str(path), grid="list:1,0", win_rate=True)
    with pytest.raises(ValueError, match="needs golden answers"):
        evaluate(config, SharedModelFamily("base", tiny_lm_dir), Run(config.run_dir, echo=None), rewards)


def test_eval_config_keeps_a_method_section_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: r\nmethod:\n  k: 3\neval:\n  grid: simplex:4\n")
    config = load_eval_config(str(path), ["eval.seed=1"])
    assert config.method == {"k": 3} and config.eval.grid == "simplex:4" and config.eval.seed == 1
    with pytest.raises(ValueError, match="did you mean 'grid'"):
        load_eval_config(str(path), ["eval.gird=ric"])


def test_eval_command_keeps_a_trained_runs_config(tmp_path, tiny_lm_dir, prompts_file, monkeypatch, capsys):
    from moalign.eval import harness

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("method:\n  k: 3\n")
    config = make_config(run_dir, tiny_lm_dir, prompts_file, grid="list:1,0")
    monkeypatch.setattr(harness, "load_eval_config", lambda path, overrides: config)
    assert harness.eval_command("unused.yaml", [], rewards=[CharCount("letters_e", "e"), CharCount("spaces", " ")]) == 0
    assert (run_dir / "config.yaml").read_text() == "method:\n  k: 3\n" and (run_dir / "eval_config.yaml").is_file()
    out = capsys.readouterr().out
    assert "1 preferences x 6 prompts" in out and "report:" in out
