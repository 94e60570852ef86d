"""moalign: multi-objective alignment of language models on the Hugging Face stack.

The Python API (:mod:`moalign.api`, guide in docs/api.md) is reached from here lazily, so that ``import
moalign`` imports neither torch nor transformers::

    import moalign
    summary = moalign.train("panacea", "embedded/panacea", overrides={"method.train.max_steps": 10})
    family = moalign.load_family(summary["run_dir"])
    metrics = moalign.evaluate(f"{summary['run_dir']}/config.yaml")

``moalign.train`` is also the name of the training subpackage (``moalign.train.sft``, ...): the subpackage is
made callable (it calls :func:`moalign.api.train`), so both uses work whichever is imported first.
"""

from __future__ import annotations

import importlib
import types

__all__ = ["evaluate", "load_config", "load_family", "train"]


def __getattr__(name: str):
    if name in ("evaluate", "load_config", "load_family"):
        from moalign import api

        return getattr(api, name)
    raise AttributeError(f"module 'moalign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _CallableTrainPackage(types.ModuleType):
    """The class of the ``moalign.train`` subpackage: calling it is :func:`moalign.api.train`."""

    def __call__(self, method: str, config=None, *, overrides=None, evaluate: bool = True) -> dict:
        """Train ``method`` (see :func:`moalign.api.train`); returns the run summary."""
        from moalign.api import train

        return train(method, config, overrides=overrides, evaluate=evaluate)


importlib.import_module("moalign.train").__class__ = _CallableTrainPackage  # an empty package: cheap
