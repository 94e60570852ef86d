"""ParetoHqD's data selection at scale: 11 preferences over 10^6 scored responses.

    python benchmarks/paretohqd_select.py [--n 1000000] [--layers 3] [--k 100] [--repeats 3]

Times what ``moalign.methods.paretohqd.select.select_for_grid`` does before any training: the top-L
non-dominated layers (grown until they hold ``min_hq_size`` rows), ideal/nadir, and for each of the 11 preferences of the "ric" grid the k nearest HQ
points to its ray with at most one response per prompt (two responses per prompt, as HH's chosen/rejected).
Three score distributions: i.i.d. normal, positively correlated (small fronts, many layers) and
anti-correlated (large fronts). Writes ``benchmarks/results/paretohqd_select.json`` with the machine facts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from moalign.methods.paretohqd.select import hq_set, ideal_nadir, select_for_grid
from moalign.pareto import preference_grid

RESULTS = Path(__file__).resolve().parent / "results" / "paretohqd_select.json"


def make_scores(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) scores: "random" i.i.d. normal; "corr" correlation 0.8; "anti" correlation -0.8."""
    if kind == "random":
        return rng.standard_normal((n, 2))
    rho = 0.8 if kind == "corr" else -0.8
    cov = np.array([[1.0, rho], [rho, 1.0]])
    return rng.multivariate_normal(np.zeros(2), cov, size=n)


def time_once(scores: np.ndarray, grid: np.ndarray, groups: np.ndarray, layers: int, k: int, min_hq: int) -> dict:
    """Seconds for the HQ layers alone, and for the whole selection (layers + 11 rays)."""
    start = time.perf_counter()
    hq = hq_set(scores, layers, min_hq)
    ideal_nadir(scores, hq, "data")
    layers_s = time.perf_counter() - start
    start = time.perf_counter()
    selection = select_for_grid(scores, grid, k=k, num_layers=layers, groups=groups, max_per_prompt=1, min_hq_size=min_hq)
    total_s = time.perf_counter() - start
    return {"layers_s": layers_s, "select_total_s": total_s, "hq_size": int(selection.hq.shape[0]),
            "selected": [int(ix.shape[0]) for ix in selection.indices]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--min-hq", default="500,0", help="min_hq_size values (500: the method's default; 0: L layers)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    grid = np.asarray(preference_grid("ric", 2))
    groups = np.arange(args.n) // 2  # two responses per prompt
    rows = []
    for kind in ("random", "corr", "anti"):
        scores = make_scores(kind, args.n, np.random.default_rng(0))
        for min_hq in (int(x) for x in args.min_hq.split(",")):
            runs = [time_once(scores, grid, groups, args.layers, args.k, min_hq) for _ in range(args.repeats)]
            row = {"data": kind, "n": args.n, "preferences": len(grid), "layers": args.layers, "k": args.k,
                   "min_hq_size": min_hq,
                   "layers_s_median": float(np.median([r["layers_s"] for r in runs])),
                   "select_total_s_median": float(np.median([r["select_total_s"] for r in runs])),
                   "hq_size": runs[0]["hq_size"], "min_selected": min(runs[0]["selected"])}
            rows.append(row)
            print(f"{kind:7s} n={args.n:,} min_hq={min_hq} HQ={row['hq_size']:,}: layers "
                  f"{row['layers_s_median']:.3f} s, layers + {len(grid)} rays {row['select_total_s_median']:.3f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    RESULTS.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
