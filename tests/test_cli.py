import subprocess
import sys
from pathlib import Path

import pytest

from moalign.cli import _parse, build_parser, main


def test_help_lists_every_verb(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for verb in ["demo", "build", "score", "select", "train", "eval", "report", "methods"]:
        assert verb in out


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "moalign", "--help"], capture_output=True, text=True, check=True)
    assert "usage: moalign" in out.stdout


def test_unknown_method_is_a_clear_error(capsys):
    assert main(["train", "paretohq", "seed=1", "--no-eval"]) == 2
    assert "Did you mean 'paretohqd'" in capsys.readouterr().err


def test_parser_routes_overrides_after_config():
    args = build_parser().parse_args(["train", "ric", "c.yaml", "a.b=1", "c=2"])
    assert args.config == "c.yaml" and args.overrides == ["a.b=1", "c=2"]


def test_overrides_may_follow_a_flag():
    args = _parse(build_parser(), ["train", "dpo", "c.yaml", "a=1", "--no-eval", "run_dir=x", "b.c=2"])
    assert args.config == "c.yaml" and args.overrides == ["a=1", "run_dir=x", "b.c=2"] and args.no_eval
    args = _parse(build_parser(), ["eval", "c.yaml", "-v", "k=v"])
    assert args.overrides == ["k=v"] and args.verbose


@pytest.mark.parametrize("argv", [["train", "dpo", "c.yaml", "--no-eval", "--bogus"],
                                  ["train", "dpo", "c.yaml", "--no-eval", "stray"],
                                  ["report", "runs/a", "--out", "r", "k=v"]])
def test_what_is_not_an_override_after_a_flag_is_still_refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        _parse(build_parser(), argv)
    assert stop.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def _write_responses(path):
    rows = [
        ("What a wonderful, lovely day to help you!", 0.8883, -8.0),
        ("No.", 0.0, -1.0),
        ("Fine, here it is, whatever you want I guess.", 0.2732, -9.0),
        ("Great!", 0.6588, -1.0),
    ]
    import json

    path.write_text("".join(json.dumps({"prompt": "Hi?", "response": r}) + "\n" for r, _, _ in rows))
    return rows


def test_score_then_select_on_offline_rules(tmp_path):
    from moalign.data import load_scored
    from moalign.rewards.normalize import ZScore

    rows = _write_responses(tmp_path / "r.jsonl")
    assert main(["score", str(tmp_path / "r.jsonl"), "--rewards", "positivity,brevity",
                 "--out", str(tmp_path / "s.jsonl"), "--stats-out", str(tmp_path / "z.json")]) == 0
    scored = load_scored(tmp_path / "s.jsonl")
    assert scored.objectives == ["positivity", "brevity"]
    assert [tuple(s) for s in scored.scores] == [(p, b) for _, p, b in rows]  # VADER compound; minus word count
    stats = ZScore.load(tmp_path / "z.json")
    assert stats.mean[1] == -4.75

    assert main(["select", str(tmp_path / "s.jsonl"), "--layers", "1", "--out", str(tmp_path / "f.jsonl")]) == 0
    front = load_scored(tmp_path / "f.jsonl")
    assert front.responses == [rows[0][0], rows[3][0]]  # "No." and the long neutral reply are dominated


def test_select_rejects_a_preference_off_the_simplex(tmp_path, capsys):
    _write_responses(tmp_path / "r.jsonl")
    main(["score", str(tmp_path / "r.jsonl"), "--rewards", "positivity,brevity", "--out", str(tmp_path / "s.jsonl")])
    code = main(["select", str(tmp_path / "s.jsonl"), "--preference", "0.5,0.6", "--out", str(tmp_path / "x.jsonl")])
    assert code == 2 and "sums to 1.1" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def _write_scored(path, scores, objectives=("x", "y")):
    import json

    path.write_text("".join(json.dumps({"prompt": f"p{i}", "response": f"r{i}",
                                        **{f"score.{o}": v for o, v in zip(objectives, row)}}) + "\n"
                            for i, row in enumerate(scores)))


def test_select_takes_ideal_and_nadir_by_paretohqds_default_rule(tmp_path):
    import numpy as np

    from moalign.data import load_scored
    from moalign.methods.paretohqd.config import ParetoHqDConfig
    from moalign.methods.paretohqd.select import select_for_grid

    # front = rows 1, 2, 3; over the front (nadir (0, 2)) row 3 is nearest w=(.5,.5), over all rows (nadir (0, 0)) row 1
    scores = [[3.0, 1.0], [4.0, 2.0], [0.0, 4.0], [1.0, 3.0], [0.0, 0.0], [1.0, 2.0]]
    _write_scored(tmp_path / "s.jsonl", scores)
    expected = select_for_grid(np.array(scores), np.array([[0.5, 0.5]]), k=1, num_layers=1,
                               rule=ParetoHqDConfig.ideal_nadir).indices[0]
    assert expected.tolist() == [1]
    for extra, want in (([], ["r1"]), (["--ideal-nadir", "hq"], ["r3"])):
        out = tmp_path / f"sel{len(extra)}.jsonl"
        assert main(["select", str(tmp_path / "s.jsonl"), "--preference", "0.5,0.5", "--k", "1", *extra,
                     "--out", str(out)]) == 0
        assert load_scored(out).responses == want


def test_ideal_nadir_choices_are_paretohqds_and_help_documents_overwrite(capsys):
    import pytest

    from moalign.cli import IDEAL_NADIR_CHOICES
    from moalign.methods.paretohqd.select import IDEAL_NADIR_RULES

    assert IDEAL_NADIR_CHOICES == IDEAL_NADIR_RULES
    for verb in ("select", "score"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--overwrite" in text and "an existing output is refused and left untouched" in text


def test_a_constant_objective_warns_in_one_line_and_still_selects(tmp_path, capsys):
    from moalign.data import load_scored

    _write_scored(tmp_path / "s.jsonl", [[1.0, 5.0], [2.0, 5.0], [0.5, 5.0]])
    assert main(["select", str(tmp_path / "s.jsonl"), "--preference", "0.5,0.5", "--k", "1",
                 "--out", str(tmp_path / "o.jsonl")]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith("moalign select: warning: ") and "ideal - 1" in warning[0]
    assert load_scored(tmp_path / "o.jsonl").responses == ["r1"]


def test_config_verb_prints_every_field_and_loads_back_to_the_same_config(capsys, tmp_path):
    from moalign.config import to_dict
    from moalign.methods.registry import method_config

    assert main(["config", "dpo", "method.train.optim=sgd"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "dpo.yaml").write_text(text)
    expected = method_config("dpo", None, ["method.train.optim=sgd"])
    assert method_config("dpo", tmp_path / "dpo.yaml") == expected
    assert expected.method.beta == 0.5  # configs/embedded/dpo.yaml's value, not the dataclass default (0.1)

    def keys(data, prefix=""):
        return {k for key, v in data.items() for k in ([f"{prefix}{key}"] + (sorted(keys(v, f"{prefix}{key}."))
                                                          if isinstance(v, dict) and v else []))}

    import yaml

    assert keys(yaml.safe_load(text)) == keys(to_dict(expected))  # every field is written out
    assert '"\\n\\nHuman:"' in text  # a stop string with line breaks stays readable


def test_train_help_lists_the_methods_fields(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "dpo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: moalign train")
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  method.")}
    assert rows["method.beta"].split()[1:4] == ["float", "0.1", "#"] and "[dpo.yaml: 0.5]" in rows["method.beta"]
    assert rows["method.train.save_steps"].split()[1:3] == ["int", "0"]
    assert "killed stage resumes there" in rows["method.train.save_steps"]  # the field's source comment
    assert "method.train.keep_checkpoints" in rows
    assert "the loader gathers them here" in rows["method.train.extra"]  # the comment lines above a field
    assert rows["method.reference"].split()[1:] == ["str", "precomputed"]  # DPOConfig's field has no comment


def test_train_help_without_a_method_says_how_to_get_its_fields(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "`moalign train METHOD --help` also lists METHOD's fields" in out and "method.beta" not in out


def test_verbose_is_a_global_flag_before_or_after_the_verb():
    parse = build_parser().parse_args
    assert parse(["-v", "train", "ric"]).verbose and parse(["train", "ric", "-v"]).verbose
    assert parse(["train", "ric", "c.yaml", "a=1", "--verbose"]).overrides == ["a=1"]
    assert not parse(["train", "ric"]).verbose and not parse(["methods"]).verbose


def _small_ric_run(run_dir, tiny_lm_dir) -> list[str]:
    """``moalign train ric`` on the tiny model, offline stage only: 4 SFT steps (TRL), two preferences."""
    return ["train", "ric", f"run_dir={run_dir}", f"model.name_or_path={tiny_lm_dir}", "task.num_test_prompts=4",
            "eval.stats_samples=40", "eval.samples_per_point=1", "eval.generation.max_new_tokens=8",
            "eval.grid=list:1,0;0,1", "method.train.max_steps=4", "method.train.logging_steps=2",
            "method.train.per_device_train_batch_size=4", "method.online.iterations=0"]


def test_a_training_run_prints_loss_lines_and_ends_with_the_metrics_table(tmp_path, tiny_lm_dir, capfd, recwarn):
    from moalign.eval.report import metrics_table

    def deprecations() -> list[str]:  # TrainingArguments' old gradient_checkpointing name: args.py no longer uses it
        return [str(w.message) for w in recwarn.list if "`gradient_checkpointing` is deprecated" in str(w.message)]

    capfd.readouterr()
    assert main(_small_ric_run(tmp_path / "quiet", tiny_lm_dir)) == 0
    assert deprecations() == []
    captured = capfd.readouterr()
    text = captured.out + captured.err
    for noise in ("{'loss':", "'train_runtime'", "Tokenizing train dataset", "Map", "Loading weights",
                  "Writing model shards"):
        assert noise not in text
    assert "  step 2/4  loss " in captured.out and "  step 4/4  loss " in captured.out
    assert "  trained 4 steps in " in captured.out
    table = metrics_table([tmp_path / "quiet"])
    assert table.startswith("run ") and "collapse" in table
    assert captured.out.endswith(f"\n\n{table}\nreport: {tmp_path / 'quiet'}/report/index.html\n")

    assert main(["-v", *_small_ric_run(tmp_path / "verbose", tiny_lm_dir)]) == 0  # everything, as the libraries print it
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "{'loss':" in text and "Tokenizing train dataset" in text and "Loading weights" in text
    assert deprecations() == []  # not hidden: not raised at all
    assert "  step 2/4  loss " not in text
    assert captured.out.endswith(f"report: {tmp_path / 'verbose'}/report/index.html\n")


def test_config_path_prints_the_installed_file_of_a_shipped_config(capsys):
    """What a wheel install's accelerate line reads: ``--config_file $(moalign config --path accelerate/multi_gpu)``."""
    import yaml

    assert main(["config", "--path", "accelerate/multi_gpu"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.is_absolute() and path.name == "multi_gpu.yaml"
    assert yaml.safe_load(path.read_text())["distributed_type"] == "MULTI_GPU"
    assert main(["config", "--path", "accelerate/multi_gpuu"]) == 2
    assert "Did you mean 'accelerate/multi_gpu'" in capsys.readouterr().err
    assert main(["config"]) == 2
    assert "--path NAME" in capsys.readouterr().err
