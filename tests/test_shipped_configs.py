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


MULTI = re.compile(r"^# accelerate launch --config_file (configs/accelerate/\S+\.yaml) -m moalign (train \w+ configs/\S+)",
                   flags=re.M)


@pytest.mark.parametrize("path", sorted(ROOT.glob("real/*.yaml")), ids=lambda p: p.name)
def test_every_real_config_names_a_multi_process_launch_of_itself(path):
    """Beside its one-GPU line, each real config names an ``accelerate launch`` over several processes whose
    accelerate config exists and loads with accelerate's own reader."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    first = launch_line(path)
    launches = {config: command for config, command in MULTI.findall(path.read_text(encoding="utf-8"))}
    several = {}
    for config in launches:
        loaded = load_config_from_file(str(ROOT.parent / config))
        if loaded.num_processes > 1:
            several[config] = loaded.distributed_type
    assert several, f"{path}: no launch line over several processes among {sorted(launches)}"
    assert all(launches[c] == f"{first.group(1)} {first.group(3)}" for c in several)
    assert set(several.values()) <= {DistributedType.MULTI_GPU, DistributedType.DEEPSPEED, DistributedType.FSDP}
