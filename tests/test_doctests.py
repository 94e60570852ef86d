"""Run every doctest example in the package: their numbers are part of the documentation, so a stale example
fails the suite. Modules are found by walking the package, so a new module's examples run without a list."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import moalign


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(moalign.__path__, prefix="moalign."):
        spec = importlib.util.find_spec(info.name)
        if spec and spec.origin and spec.origin.endswith(".py") and ">>> " in open(spec.origin, encoding="utf-8").read():
            names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_the_walk_finds_modules_outside_pareto():
    assert "moalign.pareto.weights" in MODULES and "moalign.eval.collapse" in MODULES and len(MODULES) >= 8


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} of {result.attempted} failed"


def test_public_pareto_names():
    import moalign.pareto as pareto

    for name in pareto.__all__:
        assert callable(getattr(pareto, name)), name
