"""The Python API: what ``moalign train`` and ``moalign eval`` do, callable from a script or a notebook.

``import moalign`` exposes these lazily (``moalign.train``, ``moalign.evaluate``, ``moalign.load_family``,
``moalign.load_config``), so importing the package stays fast. Guide: docs/api.md.

A ``config`` is any of: None (the method's embedded config, as the command line without a config file), a YAML
file, a shipped config's name (``embedded/panacea``, ``real/panacea_pku_saferlhf``), a
:class:`~moalign.config.RunConfig`, or a mapping laid out as the YAML file would be. ``overrides`` are the
command line's ``a.b=c`` strings or a mapping ``{"method.train.max_steps": 10}`` whose values are Python
values; both go through the command line's own override path (:func:`moalign.config.apply_overrides`), so a
misspelt key fails with the same "did you mean".
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from moalign.config import ConfigError, RunConfig, load_run_config, to_dict
from moalign.eval.family import PolicyFamily, load_family

__all__ = ["evaluate", "load_config", "load_family", "train"]

ConfigSource = str | os.PathLike | RunConfig | Mapping | None
Overrides = Sequence[str] | Mapping[str, Any] | None


def load_config(method: str, config: ConfigSource = None, *, overrides: Overrides = None) -> RunConfig:
    """The :class:`~moalign.config.RunConfig` that ``moalign train METHOD CONFIG OVERRIDES`` would run, its
    ``method`` section typed by the method's config class."""
    from moalign.methods.registry import get_method, method_config

    extra = override_strings(overrides)
    if config is None or isinstance(config, (str, os.PathLike)):
        return method_config(method, config, extra)
    data = _as_mapping(config)
    return load_run_config(None, [*_flatten(data), *extra], method_cls=get_method(method).config_cls)


def train(method: str, config: ConfigSource = None, *, overrides: Overrides = None, evaluate: bool = True) -> dict:
    """Train ``method`` in the config's ``run_dir`` (resuming finished stages) and, unless ``evaluate=False``,
    evaluate its family. Returns the summary: ``method``, ``run_dir``, ``train_seconds`` and, when evaluated,
    ``metrics`` (the content of ``metrics.json``) and ``eval_seconds``."""
    from moalign.methods.train_run import train_method

    return train_method(method, load_config(method, config, overrides=overrides), evaluate=evaluate)


def evaluate(
    config: ConfigSource = None,
    *,
    overrides: Overrides = None,
    family: PolicyFamily | str | os.PathLike | None = None,
    rewards: Sequence | None = None,
) -> dict:
    """Evaluate a policy family as ``moalign eval CONFIG OVERRIDES`` does, in the config's ``run_dir``; returns
    the metrics (the content of ``metrics.json``: ``metrics``, ``points``, ...).

    ``family``: a :class:`~moalign.eval.family.PolicyFamily`, or a run folder / ``family.json`` to load one
    from; default: ``eval.family``, else the run folder's saved family, else the base model alone.
    ``rewards``: reward objects (``.name`` and ``__call__``) replacing ``task.rewards``.
    """
    from moalign.eval.harness import evaluate_config, load_eval_config

    extra = override_strings(overrides)
    if config is None or isinstance(config, (str, os.PathLike)):
        run_config = load_eval_config(None if config is None else os.fspath(config), extra)
    else:
        run_config = load_eval_config(None, [*_flatten(_as_mapping(config)), *extra])
    if isinstance(family, (str, os.PathLike)):
        family = load_family(family)
    result, _ = evaluate_config(run_config, family=family, rewards=rewards)
    return result


def override_strings(overrides: Overrides) -> list[str]:
    """``["a.b=c", ...]`` as given, or a mapping ``{"a.b": value}`` written as such strings (values YAML)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise ConfigError(f"overrides={overrides!r}: give a list of 'key.subkey=value' strings or a mapping "
                          f"{{'key.subkey': value}}, not one string")
    if isinstance(overrides, Mapping):
        return [f"{_key(key)}={_encode(value)}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def _as_mapping(config: Any) -> Mapping:
    if isinstance(config, RunConfig):
        return to_dict(config)
    if isinstance(config, Mapping):
        return config
    raise ConfigError(f"config={config!r}: give a YAML file, a shipped config name (e.g. 'embedded/dpo'), "
                      f"a RunConfig or a mapping, not a {type(config).__name__}")


def _flatten(data: Mapping, prefix: str = "") -> Iterator[str]:
    """A nested mapping as the overrides that rebuild it from nothing (what a YAML file of it would load)."""
    for key, value in data.items():
        if not isinstance(key, str) or "." in key or "=" in key:
            raise ConfigError(f"config: key {prefix}{key!r} cannot be given in a mapping (it is not a plain "
                              f"name); write the config as a YAML file instead")
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}={_encode(value)}"


def _key(key: Any) -> str:
    if not isinstance(key, str) or "=" in key or not key.strip():
        raise ConfigError(f"overrides: key {key!r} must be a dotted field name such as 'method.train.max_steps'")
    return key


def _encode(value: Any) -> str:
    """``value`` as the YAML that :func:`~moalign.config.apply_overrides` parses back to it."""
    import yaml

    value = to_dict(value)  # dataclasses, tuples -> plain YAML types
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    return text.removesuffix("\n...\n").strip()

