"""The shipped configs live inside the package: found through importlib.resources, by name from every command,
and inside a built wheel (a wheel install has no repository ``configs/`` folder)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from moalign.config import ConfigError
from moalign.shipped_configs import resolve_config, shipped_config_dir, shipped_configs

ROOT = Path(__file__).resolve().parents[1]


def test_the_resolver_finds_shipped_configs_inside_the_package(tmp_path, monkeypatch):
    from importlib import resources

    monkeypatch.chdir(tmp_path)  # no configs/ folder here, as after a wheel install

    inside = Path(str(resources.files("moalign") / "configs" / "embedded" / "paretohqd.yaml"))
    for name in ("embedded/paretohqd", "embedded/paretohqd.yaml", "configs/embedded/paretohqd.yaml"):
        assert resolve_config(name) == inside, name
    assert resolve_config("real/panacea_pku_saferlhf").name == "panacea_pku_saferlhf.yaml"
    assert shipped_config_dir() == inside.parent.parent
    assert {"embedded/paretohqd", "real/panacea_pku_saferlhf", "accelerate/zero3"} <= set(shipped_configs())


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "embedded").mkdir()
    (tmp_path / "embedded" / "dpo").write_text("run_dir: mine\n")
    assert resolve_config("embedded/dpo") == Path("embedded/dpo")


@pytest.mark.parametrize("name, suggestion", [("embedded/paretohq", "embedded/paretohqd"),
                                              ("paretohqd", "embedded/paretohqd"),
                                              ("real/panacea", "real/panacea_pku_saferlhf")])
def test_an_unknown_name_lists_the_shipped_configs_with_a_did_you_mean(name, suggestion):
    with pytest.raises(ConfigError) as err:
        resolve_config(name)
    message = str(err.value)
    assert message.startswith(f"{name}: config file not found")
    assert f"Did you mean {suggestion!r}?" in message and "embedded/ric" in message and "real/ric_hh" in message


def test_a_path_outside_the_config_folder_is_not_a_shipped_name():
    with pytest.raises(ConfigError, match="not a shipped config"):
        resolve_config("../configs/embedded/dpo")


def test_the_source_tree_configs_folder_is_the_packaged_one():
    assert (ROOT / "configs").resolve() == (ROOT / "src" / "moalign" / "configs").resolve()
    repo = sorted(p.relative_to(ROOT / "configs").with_suffix("").as_posix() for p in (ROOT / "configs").glob("*/*.yaml"))
    assert repo == shipped_configs() and len(repo) >= 19


def test_every_command_takes_a_shipped_name():
    from moalign.eval.harness import load_eval_config
    from moalign.methods.registry import default_config_path, method_config

    assert default_config_path("paretohqd") == resolve_config("embedded/paretohqd")
    assert method_config("paretohqd", "embedded/paretohqd") == method_config("paretohqd")
    assert load_eval_config("embedded/eval_base", []).eval.samples_per_point == 8
    with pytest.raises(ConfigError, match="Did you mean 'embedded/eval_base'"):
        load_eval_config("embedded/eval_bas", [])


def test_the_demo_refuses_to_run_without_its_embedded_config(tmp_path, monkeypatch):
    import moalign.shipped_configs as shipped
    from moalign.demo import run_demo

    monkeypatch.setattr(shipped, "shipped_config_dir", lambda: tmp_path / "gone")
    with pytest.raises(ConfigError, match=r"embedded config of 'paretohqd' is missing .*reinstall moalign"):
        run_demo(tmp_path / "demo", ["paretohqd"])
    assert not (tmp_path / "demo").exists()


def test_the_wheel_ships_the_configs(tmp_path):  # about 2 s
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("moalign-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"moalign/configs/{name}.yaml" for name in shipped_configs()}
    assert expected <= names and "moalign/configs/embedded/paretohqd.yaml" in names
    assert "moalign/configs/accelerate/single_gpu.yaml" in names
