"""The comparison suite: each seed paper's comparison on the embedded task, several seeds, one report each.

    python benchmarks/fronts.py --suite paretohqd [--seeds 0 1 2] [--jobs 2] [--root /tmp/moalign-fronts]
    python benchmarks/fronts.py --suite panacea | sipo | mgda | all

A suite is a list of entries (a family = one CLI run per seed with the shipped embedded configs and the same
evaluation grid) and the orderings its seed paper claims ("A beats B" on hypervolume, or on net win rate for
MGDA). Each (entry, seed) run is reused when its folder is kept; its wall time is the sum of its stages'
recorded seconds (train = every stage outside ``eval/`` and ``report``), so it is the same whether run now or
read back. An entry whose method is not in the registry yet is skipped with that reason. Writes
``benchmarks/results/fronts_<suite>.md`` (mean ± sample std per indicator, the claimed orderings with
whether they hold and by how many standard deviations) and a ``moalign report`` of the seed-0 runs (fronts
overlaid) under ``<root>/<suite>/report``. A reversed ordering is a finding: it is printed, never hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
GRID = "eval.grid=list:0,1;0.25,0.75;0.5,0.5;0.75,0.25;1,0"
METRICS = ("hypervolume_z", "inner_product", "spacing", "sparsity", "collapse_rate")
OBJECTIVES = ("positivity", "brevity")


@dataclass(frozen=True)
class Entry:
    """One family of a suite: the CLI verb and arguments (without seed, run_dir and the grid)."""

    name: str
    args: tuple[str, ...]
    method: str | None = None  # the registry name it needs (None: plain evaluation)
    grid: str | None = None  # its own evaluation grid override (None: the suite's)


@dataclass(frozen=True)
class Suite:
    entries: tuple[Entry, ...]
    claims: tuple[tuple[str, str], ...]  # (winner, loser) as the seed paper claims
    metric: str = "hypervolume_z"
    grid: str = GRID
    extra: tuple[str, ...] = field(default=())


def _train(name: str, method: str, config: str, *overrides: str, grid: str | None = None) -> Entry:
    return Entry(name, ("train", method, f"configs/embedded/{config}.yaml", *overrides), method, grid)


# MODPO divides by the trained objective's weight, so its grid starts at w = (0.1, 0.9) (its embedded config's)
MODPO_GRID = "eval.grid=list:0.1,0.9;0.25,0.75;0.5,0.5;0.75,0.25;1,0"


BASE = Entry("base", ("eval", "configs/embedded/eval_base.yaml"))
SUITES = {
    "paretohqd": Suite(
        entries=(_train("paretohqd", "paretohqd", "paretohqd"), _train("ric", "ric", "ric"),
                 _train("morlhf", "morlhf", "morlhf"), _train("rewarded-soups", "rewarded_soups", "rewarded_soups"),
                 _train("dpo-soups", "soups", "soups"),
                 _train("modpo", "modpo", "modpo", grid=MODPO_GRID), _train("dpo-lw", "dpo_lw", "dpo_lw"), BASE),
        claims=tuple(("paretohqd", other) for other in ("ric", "morlhf", "rewarded-soups", "modpo", "dpo-lw")),
    ),
    "panacea": Suite(
        entries=(_train("panacea-ls", "panacea", "panacea"),
                 _train("panacea-tche", "panacea", "panacea", "method.aggregation=tche"),
                 _train("panacea-sft-ls", "panacea", "panacea_sft"),
                 _train("panacea-rlhf-ls", "panacea", "panacea_rlhf"),
                 _train("rewarded-soups", "rewarded_soups", "rewarded_soups"), _train("dpo-soups", "soups", "soups"),
                 _train("dpo-lw", "dpo_lw", "dpo_lw"), BASE),
        claims=(("panacea-ls", "rewarded-soups"), ("panacea-tche", "rewarded-soups"), ("panacea-ls", "dpo-lw"),
                ("panacea-tche", "dpo-lw"), ("panacea-rlhf-ls", "rewarded-soups"), ("panacea-rlhf-ls", "dpo-lw")),
    ),
    "sipo": Suite(
        entries=(_train("sipo", "sipo", "sipo"), _train("sipo-review", "sipo", "sipo", "method.review.objective=positivity"),
                 # the re-alignment at 1/2 of the experts' learning rate instead of the official 1/100
                 _train("sipo-lr1e-3", "sipo", "sipo", "method.realign.train.learning_rate=1e-3"),
                 _train("sipo-review-lr1e-3", "sipo", "sipo", "method.review.objective=positivity",
                        "method.realign.train.learning_rate=1e-3"),
                 _train("mod", "mod", "mod"), _train("dpo-soups", "soups", "soups"),
                 _train("modpo", "modpo", "modpo", grid=MODPO_GRID), _train("dpo-lw", "dpo_lw", "dpo_lw"), BASE),
        claims=(("sipo", "dpo-lw"), ("sipo", "dpo-soups"), ("sipo", "mod"), ("sipo", "modpo"), ("sipo-review", "sipo"),
                ("sipo-review-lr1e-3", "sipo-lr1e-3")),
    ),
    "mgda": Suite(
        entries=(_train("mgda-decoupled", "mgda", "mgda"),
                 *(_train(f"mgda-{mode}", "mgda", "mgda", f"method.mode={mode}")
                   for mode in ("vanilla", "normalised", "uniform", "groupdro"))),
        claims=tuple(("mgda-decoupled", f"mgda-{mode}") for mode in ("vanilla", "normalised", "uniform", "groupdro")),
        metric="net_win", grid="eval.grid=list:0.5,0.5",
    ),
}


def available(entry: Entry) -> str | None:
    """None when the entry can run, else why not (its method is not registered yet)."""
    from moalign.methods.registry import METHOD_MODULES

    if entry.method is not None and entry.method not in METHOD_MODULES:
        return f"method {entry.method!r} is not in moalign's registry yet"
    return None


def run(entry: Entry, suite: Suite, seed: int, root: Path) -> dict:
    """The metrics and stage wall times of one (entry, seed) run, trained and evaluated now or read back."""
    run_dir = root / f"{entry.name}-s{seed}"
    metrics_file = run_dir / "eval" / "metrics" / "metrics.json"
    if not metrics_file.is_file():
        command = [sys.executable, "-m", "moalign", *entry.args, f"seed={seed}", f"run_dir={run_dir}",
                   entry.grid or suite.grid,
                   "eval.progress=false", "eval.win_rate=true", *suite.extra]
        done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    train_s = eval_s = 0.0
    for stage in run_dir.rglob("_stage.json"):
        relative = stage.parent.relative_to(run_dir).as_posix()
        seconds = float(json.loads(stage.read_text()).get("seconds", 0.0))
        if relative.startswith(("eval/", "report")):
            eval_s += seconds
        else:
            train_s += seconds
    return {"metrics": json.loads(metrics_file.read_text())["metrics"], "train_s": train_s, "eval_s": eval_s,
            "filter": sipo_filter(run_dir)}


def sipo_filter(run_dir: Path) -> dict | None:
    """A SIPO run's conflict and filter counts (round 1), None for other methods."""
    conflicts, select = run_dir / "sipo" / "conflicts" / "info.json", run_dir / "sipo" / "round1" / "select" / "info.json"
    if not (conflicts.is_file() and select.is_file()):
        return None
    info = json.loads(select.read_text())
    return {"conflicts": json.loads(conflicts.read_text())["used"], "survivors": info["survivors"],
            "rewrites_kept": sum(info["rewrites_kept"].values()), "by_weight": info["survivors_by_weight"]}


def filter_lines(filters: dict[str, list[dict]]) -> list[str]:
    """One line per SIPO entry: conflicting comparisons, survivors and kept rewrites, per seed."""
    lines = []
    for family, rows in filters.items():
        per_seed = "; ".join(f"{r['survivors']}/{r['conflicts']} survived" + (f", {r['rewrites_kept']} rewrites kept"
                                                                              if r["rewrites_kept"] else "")
                             + f" (by a: {r['by_weight']})" for r in rows)
        lines.append(f"- {family}: {per_seed}")
    return ["", "SIPO's filter, per seed (conflicting comparisons used; candidates surviving; by sample weight a):",
            "", *lines] if lines else []


def values(metrics: dict) -> dict[str, float]:
    out = {}
    for name in METRICS:
        value = metrics.get(name, {}).get("value")
        out[name] = float("nan") if value is None else float(value)
    for objective in OBJECTIVES:
        rho = metrics.get("controllability", {}).get("value", {}).get(objective)
        out[f"control/{objective}"] = float("nan") if rho is None else float(rho)
    win = metrics.get("win_rate", {}).get("value", {}).get("overall", {}).get("net")
    out["net_win"] = float("nan") if win is None else float(win)
    return out


def mean_std(column: list[float]) -> tuple[float, float, int, int]:
    """(mean, sample std, seeds with a value, seeds): a seed whose indicator is undefined (every point
    degenerate) is left out of the mean and counted, never silently dropped."""
    finite = np.asarray([x for x in column if np.isfinite(x)], dtype=float)
    if not len(finite):
        return float("nan"), float("nan"), 0, len(column)
    return float(finite.mean()), float(finite.std(ddof=1)) if len(finite) > 1 else 0.0, len(finite), len(column)


def fmt(stats: tuple[float, float, int, int]) -> str:
    mean, std, n, total = stats
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}" + (f" ({n}/{total} seeds)" if n < total else "")


def ordering(claims, table: dict[str, dict[str, tuple]], metric: str) -> list[str]:
    """One line per claimed ordering: holds or reversed, by how much in pooled standard deviations."""
    lines = []
    for winner, loser in claims:
        if winner not in table or loser not in table:
            missing = [n for n in (winner, loser) if n not in table]
            lines.append(f"- {winner} > {loser}: not measured ({', '.join(missing)} skipped)")
            continue
        (a, sa, *_), (b, sb, *_) = table[winner][metric], table[loser][metric]
        if not (np.isfinite(a) and np.isfinite(b)):
            lines.append(f"- {winner} > {loser}: undefined ({metric} is n/a)")
            continue
        spread = max(np.sqrt((sa**2 + sb**2) / 2), 1e-12)
        verdict = "holds" if a > b else ("tie" if a == b else "REVERSED")
        margin = "within the spread" if abs(a - b) < spread else f"{abs(a - b) / spread:.1f} sd apart"
        lines.append(f"- {winner} > {loser} on {metric}: {verdict} ({a:.3f} vs {b:.3f}; {margin})")
    return lines


def run_suite(name: str, seeds: list[int], root: Path, jobs: int = 1) -> str:
    from concurrent.futures import ThreadPoolExecutor

    suite = SUITES[name]
    folder = root / name
    table: dict[str, dict[str, tuple]] = {}
    walls: dict[str, tuple[float, float]] = {}
    filters: dict[str, list[dict]] = {}
    skipped = [f"- {e.name}: skipped, {why}" for e in suite.entries if (why := available(e))]
    runnable = [e for e in suite.entries if not available(e)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each run is its own one-thread process
        futures = {(e.name, seed): pool.submit(run, e, suite, seed, folder) for e in runnable for seed in seeds}
    for entry in runnable:
        try:
            results = [futures[(entry.name, seed)].result() for seed in seeds]
        except RuntimeError as err:  # one failing family is reported, the others still are
            last = [line for line in str(err).splitlines() if line.strip()][-1]
            skipped.append(f"- {entry.name}: FAILED, {last[:300]}")
            continue
        rows = [values(r["metrics"]) for r in results]
        for seed, row in zip(seeds, rows):
            print(f"{name}/{entry.name} seed {seed}: {row}", flush=True)
        table[entry.name] = {key: mean_std([row[key] for row in rows]) for key in rows[0]}
        walls[entry.name] = (sum(r["train_s"] for r in results), sum(r["eval_s"] for r in results))
        if all(r["filter"] for r in results):
            filters[entry.name] = [r["filter"] for r in results]
    elapsed = time.perf_counter() - start
    seed0 = [str(folder / f"{entry}-s{seeds[0]}") for entry in table]
    subprocess.run([sys.executable, "-m", "moalign", "report", *seed0, "--out", str(folder / "report"), "--overwrite"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    columns = list(next(iter(table.values())).keys()) if table else []
    lines = [
        f"# Comparison suite `{name}` on the embedded task",
        "",
        f"`python benchmarks/fronts.py --suite {name} --seeds {' '.join(map(str, seeds))}`; machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jobs} run(s) at a time; this "
        f"invocation took {elapsed:.0f} s wall (runs already on disk are read back). Mean ± sample standard deviation over {len(seeds)} seeds; "
        f"grid `{suite.grid.split('=', 1)[1]}`. hypervolume_z: in the task's train z-score space (one reference "
        "point for all); control/<objective>: Spearman of the objective's mean score against its weight; net_win: "
        "win rate minus loss rate against the task's golden answers. Wall times: the sum of the runs' recorded "
        "stage times over all seeds.",
        "",
        "| family | " + " | ".join(columns) + " | train s | eval s |",
        "|---|" + "---|" * (len(columns) + 2),
        *[f"| {family} | " + " | ".join(fmt(row[c]) for c in columns) + f" | {walls[family][0]:.0f} | {walls[family][1]:.0f} |"
          for family, row in table.items()],
        "",
        f"Claimed orderings (the seed paper's), on {suite.metric}:",
        "",
        *ordering(suite.claims, table, suite.metric),
        *filter_lines(filters),
        *([""] + skipped if skipped else []),
        "",
    ]
    text = "\n".join(lines)
    (RESULTS / f"fronts_{name}.md").write_text(text, encoding="utf-8")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="paretohqd")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", default="/tmp/moalign-fronts")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each uses one torch thread)")
    args = parser.parse_args()
    for name in SUITES if args.suite == "all" else [args.suite]:
        print(run_suite(name, args.seeds, Path(args.root), args.jobs))


if __name__ == "__main__":
    main()
