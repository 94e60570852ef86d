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


def default_config_path(method: str) -> Path | None:
    """configs/embedded/<method>.yaml from the source tree, when it exists (the embedded default)."""
    path = Path(__file__).resolve().parents[3] / "configs" / "embedded" / f"{method}.yaml"
    return path if path.is_file() else None


def method_config(name: str, config_path: str | Path | None = None, overrides: Sequence[str] = ()):
    """The :class:`~moalign.config.RunConfig` of method ``name``: ``config_path`` (default: its embedded config)
    plus ``overrides``, its ``method:`` section typed by the method's config class."""
    from moalign.config import load_run_config

    path = config_path or default_config_path(name)
    return load_run_config(path, list(overrides), method_cls=get_method(name).config_cls)

