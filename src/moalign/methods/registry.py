"""Method registry: names -> method specs, imported lazily so that ``moalign --help`` stays fast.

Each method module exposes ``METHOD = MethodSpec(...)``: its config dataclass and a ``train`` function that
runs its stages in a :class:`moalign.pipeline.Run` and returns the resulting policy family. Code outside
``moalign.methods`` (the demo, the CLI) reaches a method only through this module (:func:`get_method`
and :func:`method_config`, its YAML config typed) and :mod:`moalign.methods.train_run`, which runs any of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

METHOD_MODULES = {
    "paretohqd": "moalign.methods.paretohqd",
    "ric": "moalign.methods.ric",
    "dpo": "moalign.methods.dpo_lw",
    "dpo_lw": "moalign.methods.dpo_lw",
    "modpo": "moalign.methods.modpo",
    "mgda": "moalign.methods.mgda",
    "panacea": "moalign.methods.panacea",
    "soups": "moalign.methods.soups",
    "rewarded_soups": "moalign.methods.soups",
    "mod": "moalign.methods.mod",
    "morlhf": "moalign.methods.morlhf",
    "sipo": "moalign.methods.sipo",
}


@dataclass(frozen=True)
class MethodSpec:
    """``train(run_config, run) -> PolicyFamily``; ``config_cls`` types the YAML ``method:`` section."""

    name: str
    config_cls: type
    train: Callable
    summary: str = ""


def get_method(name: str) -> MethodSpec:
    """The spec of a registered method, with a clear error for an unknown name."""
    if name not in METHOD_MODULES:
        import difflib

        close = difflib.get_close_matches(name, list(METHOD_MODULES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(METHOD_MODULES))}.{hint}")
    module = importlib.import_module(METHOD_MODULES[name])
    specs = getattr(module, "METHODS", None) or {module.METHOD.name: module.METHOD}
    return specs[name]


def default_config_path(method: str, *, required: bool = False) -> Path | None:
    """The shipped ``embedded/<method>.yaml`` (inside the installed package), None when there is none; a
    ConfigError instead when ``required`` (the demo: it must not run on the bare dataclass defaults)."""
    from moalign.config import ConfigError
    from moalign.shipped_configs import shipped_config, shipped_config_dir

    path = shipped_config(f"embedded/{method}")
    if path is None and required:
        raise ConfigError(f"{shipped_config_dir() / 'embedded' / (method + '.yaml')}: the embedded config of "
                          f"{method!r} is missing from the installed package; reinstall moalign (the wheel ships "
                          f"moalign/configs/), or pass a config file")
    return path


def method_config(name: str, config_path: str | Path | None = None, overrides: Sequence[str] = ()):
    """The :class:`~moalign.config.RunConfig` of method ``name``: ``config_path`` (a file or a shipped name such
    as ``embedded/dpo``; default: its embedded config) plus ``overrides``, its ``method:`` section typed by the
    method's config class."""
    from moalign.config import load_run_config
    from moalign.shipped_configs import resolve_config

    path = resolve_config(config_path) if config_path else default_config_path(name)
    return load_run_config(path, list(overrides), method_cls=get_method(name).config_cls)
