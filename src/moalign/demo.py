"""The embedded demo: build the tiny task, train each method, evaluate all on one grid, write one report.

This is the README's main command. Every stage is resumable: rerunning it skips what already finished. Every
method's config is loaded and validated before the first one trains, so a bad override fails at once. Methods
are reached through :mod:`moalign.methods.registry` and the method-agnostic runner only.
"""

from __future__ import annotations

import time
from pathlib import Path

from moalign.checks import validate_run_config
from moalign.methods.registry import default_config_path, method_config
from moalign.methods.train_run import train_method


def run_demo(
    run_dir: str | Path, methods: list[str], overrides: list[str] | None = None
) -> tuple[Path, dict[str, float]]:
    """Run the demo under ``run_dir``; return the report folder and the wall time of each stage."""
    from moalign.eval.report import metrics_table, write_report
    from moalign.models.tiny import ensure_tiny_model

    run_dir = Path(run_dir)
    configs = {method: method_config(method, default_config_path(method, required=True),  # never bare defaults
                                     [*(overrides or []), f"run_dir={run_dir / method}"])
               for method in methods}
    for config in configs.values():
        validate_run_config(config)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    print("[build] the embedded tiny model and task (cached after the first build)")
    ensure_tiny_model()
    timings["build embedded task"] = time.perf_counter() - start
    summaries = []
    for method, config in configs.items():
        print(f"[{method}] training and evaluating in {config.run_dir}")
        summary = train_method(method, config, evaluate=True)
        timings[f"{method}: train"] = summary["train_seconds"]
        timings[f"{method}: evaluate"] = summary["eval_seconds"]
        summaries.append(summary)
    start = time.perf_counter()
    report = write_report([Path(s["run_dir"]) for s in summaries], run_dir / "report")
    timings["report"] = time.perf_counter() - start
    _print_timings(timings)
    print(f"\n{metrics_table([Path(s['run_dir']) for s in summaries])}")
    print(f"report: {Path(report) / 'index.html'}")
    return Path(report), timings


def _print_timings(timings: dict[str, float]) -> None:
    total = sum(timings.values())
    print("\nwall time per stage")
    for name, seconds in timings.items():
        print(f"  {name:28s} {seconds:7.1f} s")
    print(f"  {'total':28s} {total:7.1f} s")
