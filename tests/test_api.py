"""The Python API (moalign.train / evaluate / load_family / load_config): the same configs and override path as
the command line, a fast ``import moalign``, and the docs/api.md example run as written (tiny settings)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import moalign
from moalign.api import override_strings
from moalign.config import ConfigError, RunConfig, apply_overrides, to_dict

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_import_moalign_imports_neither_torch_nor_transformers():
    code = ("import sys, moalign; heavy = [m for m in ('torch', 'transformers', 'numpy', 'moalign.api') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_api_is_reached_from_the_package():
    from moalign import api

    assert moalign.evaluate is api.evaluate and moalign.load_config is api.load_config
    assert moalign.load_family is api.load_family and {"train", "evaluate"} <= set(dir(moalign))
    importlib.import_module("moalign.train.sft")  # the training subpackage keeps working, and stays callable
    assert callable(moalign.train) and moalign.train.sft.__name__ == "moalign.train.sft"
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        moalign.trian  # noqa: B018


def test_every_config_source_gives_the_command_lines_config():
    from moalign.methods.registry import method_config

    cli = method_config("dpo", "configs/embedded/dpo.yaml", ["method.train.max_steps=7", "run_dir=runs/x"])
    base = moalign.load_config("dpo")
    mapping = {"method.train.max_steps": 7, "run_dir": "runs/x"}
    assert moalign.load_config("dpo", "embedded/dpo", overrides=mapping) == cli
    assert moalign.load_config("dpo", base, overrides=["method.train.max_steps=7", "run_dir=runs/x"]) == cli
    assert moalign.load_config("dpo", to_dict(base), overrides=mapping) == cli
    assert cli.method.train.max_steps == 7 and base.method.train.max_steps == 60  # embedded/dpo.yaml's value
    for method in ("paretohqd", "ric", "panacea", "mgda", "modpo", "dpo_lw"):  # every section round-trips
        config = moalign.load_config(method)
        assert moalign.load_config(method, config) == config, method


def test_a_mapping_override_reads_back_as_the_python_value():
    values = {"a": "\n\nHuman:", "b": 1e-5, "c": None, "d": [1, "x"], "e": "null", "f": "", "g": Path("p/q"),
              "h": float("inf"), "i": True, "j": {"k": 2}, "l": "a: b"}
    back = apply_overrides({}, override_strings({f"s.{k}": v for k, v in values.items()}))["s"]
    assert back == {**values, "g": "p/q"}
    assert override_strings(["a.b=1"]) == ["a.b=1"]


def test_bad_config_sources_and_overrides_name_the_fix():
    with pytest.raises(ConfigError, match="unknown key 'trian'; did you mean 'train'"):
        moalign.load_config("dpo", overrides={"method.trian.max_steps": 3})
    with pytest.raises(ConfigError, match="not one string"):
        moalign.load_config("dpo", overrides="method.train.max_steps=3")
    with pytest.raises(ConfigError, match="Did you mean 'embedded/dpo'"):
        moalign.load_config("dpo", "embedded/dpoo")
    with pytest.raises(ConfigError, match="a RunConfig or a mapping, not a int"):
        moalign.load_config("dpo", 3)
    assert isinstance(moalign.load_config("dpo", {"run_dir": "runs/y"}), RunConfig)


def _doc_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 2 and "moalign.train(" in blocks[0] and "moalign.evaluate(" in blocks[0]
    return blocks[0]


def test_the_docs_example_runs_as_written(tiny_lm_dir, tmp_path, monkeypatch, capsys):
    """docs/api.md's first code block, verbatim, on the tiny random model with a few steps and prompts."""
    from moalign import api
    from moalign.methods.panacea import PanaceaFamily

    tiny = {"model.name_or_path": tiny_lm_dir, "method.train.max_steps": 2, "method.pairs.max_pairs_per_objective": 16,
            "method.train.per_device_train_batch_size": 4, "method.train.max_length": 96,
            "task.num_test_prompts": 3, "eval.stats_samples": 40, "eval.samples_per_point": 1,
            "eval.generation.max_new_tokens": 8, "eval.include_degenerate": True}
    real_train, real_evaluate = api.train, api.evaluate

    monkeypatch.setattr(api, "train", lambda m, c=None, *, overrides=None, evaluate=True:
                        real_train(m, c, overrides={**overrides, **tiny}, evaluate=evaluate))
    monkeypatch.setattr(api, "evaluate", lambda c=None, *, overrides=None, **kw: real_evaluate(
        c, overrides={**overrides, **{k: v for k, v in tiny.items() if not k.startswith("method.")}}, **kw))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_doc_code(), str(DOC), "exec"), namespace)

    summary, result = namespace["summary"], namespace["result"]
    run_dir = tmp_path / "runs" / "api_panacea"
    assert Path(summary["run_dir"]).resolve() == run_dir.resolve() and summary["method"] == "panacea"
    assert summary["metrics"]["metrics"]["n_points"]["value"] == 3
    assert isinstance(namespace["family"], PanaceaFamily) and isinstance(namespace["reply"], str)
    assert [p["w"] for p in result["points"]] == [[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25], [1.0, 0.0]]
    assert result["metrics"]["n_points"]["value"] == 5
    assert "hypervolume" in capsys.readouterr().out
