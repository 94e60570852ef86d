"""Panacea-LS, Panacea-Tche (DPO variant), Panacea-SFT-LS, DPO-LW (one model per w: the DPS baseline) and the
base model on the embedded task, over several seeds: front metrics as mean +- standard deviation.

    python benchmarks/panacea_front.py [--seeds 0 1 2] [--root /tmp/moalign-panacea-front]

Each (family, seed) is one CLI run (``moalign train ...`` / ``moalign eval ...``) with the shipped embedded
configs and the same five evaluation preferences; a finished run is reused when the folder is kept (its wall
time is the sum of its stages' recorded seconds, so it is the same whether run now or read back). Writes
``benchmarks/results/panacea_front.md`` and a ``moalign report`` of the seed-0 runs under ``<root>/report``.
Hypervolume is the z-scored one (the task's train statistics, the same reference point for every run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "panacea_front.md"
GRID = "eval.grid=list:0,1;0.25,0.75;0.5,0.5;0.75,0.25;1,0"
FAMILIES = {  # name -> CLI verb and arguments
    "panacea-ls": ["train", "panacea", "configs/embedded/panacea.yaml"],
    "panacea-tche": ["train", "panacea", "configs/embedded/panacea.yaml", "method.aggregation=tche"],
    "panacea-sft-ls": ["train", "panacea", "configs/embedded/panacea_sft.yaml"],
    "dpo-lw": ["train", "dpo_lw", "configs/embedded/dpo_lw.yaml"],
    "base": ["eval", "configs/embedded/eval_base.yaml"],
}
METRICS = ("hypervolume_z", "inner_product", "spacing", "sparsity", "collapse_rate")


def run(family: str, seed: int, root: Path) -> tuple[dict, float]:
    """The metrics of one run (trained and evaluated now, or read back) and its stages' wall time."""
    run_dir = root / f"{family}-s{seed}"
    metrics_file = run_dir / "eval" / "metrics" / "metrics.json"
    if not metrics_file.is_file():
        command = [sys.executable, "-m", "moalign", *FAMILIES[family], f"seed={seed}", f"run_dir={run_dir}", GRID,
                   "eval.progress=false"]
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = sum(json.loads(f.read_text())["seconds"] for f in run_dir.rglob("_stage.json"))
    return json.loads(metrics_file.read_text())["metrics"], seconds


def values(metrics: dict, objectives: list[str]) -> dict[str, float]:
    out = {name: float(metrics[name]["value"]) for name in METRICS if name in metrics}
    for objective in objectives:
        rho = metrics["controllability"]["value"].get(objective)
        out[f"control/{objective}"] = float("nan") if rho is None else float(rho)
    return out


def summary(rows: list[dict[str, float]]) -> dict[str, str]:
    keys = rows[0].keys()
    out = {}
    for key in keys:
        column = np.array([row[key] for row in rows], dtype=float)
        finite = column[np.isfinite(column)]
        out[key] = "n/a" if not len(finite) else f"{finite.mean():.3f} ± {finite.std(ddof=1) if len(finite) > 1 else 0:.3f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", default="/tmp/moalign-panacea-front")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    root = Path(args.root)
    objectives = ["positivity", "brevity"]
    table, seconds = {}, {}
    for family in FAMILIES:
        rows = []
        for seed in args.seeds:
            metrics, elapsed = run(family, seed, root)
            rows.append(values(metrics, objectives))
            seconds[family] = seconds.get(family, 0.0) + elapsed
            print(f"{family} seed {seed}: {rows[-1]}", flush=True)
        table[family] = summary(rows)
    seed0 = [str(root / f"{family}-s{args.seeds[0]}") for family in FAMILIES]
    subprocess.run([sys.executable, "-m", "moalign", "report", *seed0, "--out", str(root / "report"), "--overwrite"],
                   check=False, stdout=subprocess.DEVNULL)
    columns = list(next(iter(table.values())).keys())
    lines = [
        "# Panacea (DPO and SFT variants) vs DPO-LW vs the base model on the embedded task",
        "",
        f"`python benchmarks/panacea_front.py --seeds {' '.join(map(str, args.seeds))}`; machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores. Mean ± sample standard deviation over "
        f"{len(args.seeds)} seeds; five evaluation preferences (w_positivity = 0, 0.25, 0.5, 0.75, 1); 32 test prompts. "
        "hypervolume_z: in the task's train z-score space (same reference point for all); control/<objective>: "
        "Spearman of the objective's mean score against its weight over the grid. Panacea is one model for the "
        "five points (DPO or SFT variant), DPO-LW five models. Wall time: the sum of the runs' stage times.",
        "",
        "| family | " + " | ".join(columns) + " | wall s (all seeds) |",
        "|---|" + "---|" * (len(columns) + 1),
        *[f"| {family} | " + " | ".join(row[c] for c in columns) + f" | {seconds[family]:.0f} |"
          for family, row in table.items()],
        "",
    ]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
