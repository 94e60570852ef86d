"""``moalign train METHOD CONFIG``: resolve the config, run the method's stages, save and evaluate its family.

The whole config is checked (:func:`moalign.checks.validate_run_config`) before the run directory is created
or locked, so a bad value fails in a second and leaves nothing behind, not after hours of earlier stages.
"""

from __future__ import annotations

import time

from moalign import distributed
from moalign.checks import validate_run_config
from moalign.config import ConfigError, RunConfig
from moalign.console import echo
from moalign.methods.registry import default_config_path, get_method, method_config
from moalign.pipeline import Run

FAMILY_FILE = "family.json"

__all__ = ["FAMILY_FILE", "default_config_path", "train_command", "train_method"]


def train_method(method: str, config: RunConfig, evaluate: bool = True) -> dict:
    """Train ``method`` in ``config.run_dir`` (resuming finished stages), then evaluate its family.

    Returns a summary with the run directory, wall time and (when evaluated) the metrics. The run directory is
    locked for the duration (:class:`moalign.pipeline.Run`): a second process on it is refused.
    """
    spec = get_method(method)
    if not isinstance(config.method, spec.config_cls):
        raise ConfigError(f"method: {method} takes a {spec.config_cls.__name__} section, got "
                          f"{type(config.method).__name__}; load the config with method_config({method!r}, ...)")
    validate_run_config(config)
    with Run(config.run_dir, echo=echo) as run:  # stage messages above the progress bars
        return _train_in(run, method, spec, config, evaluate)


def _train_in(run: Run, method: str, spec, config: RunConfig, evaluate: bool) -> dict:
    from moalign.config import save_config
    from moalign.eval.family import save_family

    if distributed.is_main():
        save_config(config, run.root / "config.yaml")
    start = time.perf_counter()
    family = spec.train(config, run)
    if distributed.is_main():
        save_family(family, run.root / FAMILY_FILE)
    summary: dict = {"method": method, "run_dir": str(run.root), "train_seconds": time.perf_counter() - start}
    if evaluate:
        from moalign.eval.harness import evaluate as evaluate_family

        start = time.perf_counter()
        summary["metrics"] = evaluate_family(config, family, run)
        summary["eval_seconds"] = time.perf_counter() - start
    return summary


def train_command(method: str, config_path: str | None, overrides: list[str], evaluate: bool = True) -> int:
    config = method_config(method, config_path, overrides)
    summary = train_method(method, config, evaluate=evaluate)
    if not distributed.is_main():
        return 0
    print(f"{method}: trained in {summary['train_seconds']:.0f} s -> {summary['run_dir']}")
    if "metrics" in summary:
        from moalign.eval.report import metrics_table
        from moalign.eval.stages import REPORT_STAGE

        print(f"{method}: evaluated in {summary['eval_seconds']:.0f} s\n\n{metrics_table([summary['run_dir']])}")
        print(f"report: {summary['run_dir']}/{REPORT_STAGE}/index.html")
    return 0
