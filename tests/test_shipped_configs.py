"""Every shipped config loads, typed by the method its launch line names, and passes the run-config checks
that need no model download."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from moalign.config import load_run_config
from moalign.methods.registry import get_method

ROOT = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted([*ROOT.glob("embedded/*.yaml"), *ROOT.glob("real/*.yaml")])
LAUNCH = re.compile(r"moalign (train (\w+)|eval) (configs/\S+\.yaml)")


def launch_line(path: Path) -> re.Match:
    found = LAUNCH.search(path.read_text(encoding="utf-8").split("\n", 1)[0])
    assert found, f"{path}: the first line must be the command that runs it (moalign train <method> {path})"
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_loads_with_its_method(path):
    found = launch_line(path)
    assert found.group(3) == f"configs/{path.parent.name}/{path.name}"  # the launch line names this very file
    method = found.group(2)
    config = load_run_config(path, method_cls=get_method(method).config_cls if method else None)
    if method:
        check_run = getattr(config.method, "check_run", None)
        if callable(check_run):
            check_run(config)
    assert len(config.task.rewards) == len(config.task.objectives)


def test_every_registered_method_ships_an_embedded_config():
    from moalign.methods.registry import METHOD_MODULES, default_config_path

    assert [m for m in METHOD_MODULES if default_config_path(m) is None] == []
