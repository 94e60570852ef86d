"""``moalign report RUN_DIR [RUN_DIR ...]``: fronts (PNG), a metrics table (Markdown + JSON) and an HTML page.

Comparing several runs (methods) on one task is the main use. Besides each run's own metrics, the report
computes two comparison metrics over all the runs given, stated as such in the table:

* ``hv_shared``: every run's hypervolume against ONE reference point, the per-objective minimum of the runs'
  own reference points (raw units), so the numbers are comparable even if the runs' rules differed;
* ``igd_union``: IGD of each run against the non-dominated points of all runs together (raw units).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moalign.eval.stages import METRICS_STAGE, SCORE_PREFIX
from moalign.io_utils import atomic_dir, atomic_write_json, atomic_write_text


@dataclass
class RunResult:
    """What the report needs from one evaluated run directory."""

    label: str
    run_dir: Path
    result: dict  # the content of eval/metrics/metrics.json
    samples: dict[str, list[dict]] = field(default_factory=dict)  # point key -> first rows (prompt, response, scores)

    @property
    def objectives(self) -> list[str]:
        return self.result["objectives"]

    @property
    def ws(self) -> np.ndarray:
        return np.array([p["w"] for p in self.result["points"]], dtype=float)

    @property
    def points(self) -> np.ndarray:
        return np.array([p["mean"] for p in self.result["points"]], dtype=float)

    @property
    def se(self) -> np.ndarray:
        return np.array([p["se"] for p in self.result["points"]], dtype=float)


def load_run(run_dir: str | Path, label: str | None = None, samples_per_point: int = 8) -> RunResult:
    """Read one run's metrics and a few sample generations per preference."""
    from moalign.eval.rows import read_rows

    run_dir = Path(run_dir)
    path = run_dir / METRICS_STAGE / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {METRICS_STAGE}/metrics.json; evaluate it first (moalign eval CONFIG)")
    result = json.loads(path.read_text())
    samples = {}
    for point in result["points"]:
        rows_path = run_dir / (SCORE_PREFIX + point["key"]) / "rows.jsonl"
        rows = read_rows(rows_path)[:samples_per_point] if rows_path.is_file() else []
        samples[point["key"]] = [{k: r[k] for k in ("index", "prompt", "response", "scores", "collapsed")} for r in rows]
    return RunResult(label or run_dir.name, run_dir, result, samples)


def _labels(run_dirs: list[Path]) -> list[str]:
    """Folder names, or parent/name where two runs share a name."""
    names = [p.resolve().name for p in run_dirs]
    return [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(run_dirs, names)]


def comparison(runs: list[RunResult]) -> dict:
    """The report's own cross-run metrics (see the module docstring), with their parameters."""
    from moalign.pareto import hypervolume, igd, is_nondominated

    refs = np.array([r.result["metrics"]["hypervolume"]["reference"] for r in runs], dtype=float)
    shared = refs.min(axis=0)
    out = {"hv_shared": {"reference": shared, "space": "raw", "reference_rule": "per-objective min of the runs' references",
                         "value": {r.label: hypervolume(r.points, shared) for r in runs}}}
    if len(runs) > 1:
        union = np.concatenate([r.points for r in runs])
        front = union[is_nondominated(union)]
        out["igd_union"] = {"space": "raw", "reference_front": "non-dominated points of all runs in this report",
                            "front": front, "value": {r.label: igd(r.points, front) for r in runs}}
    return out


def table_rows(runs: list[RunResult], compared: dict) -> tuple[list[str], list[list[str]]]:
    """Header and one row of formatted values per run (the Markdown and HTML tables)."""
    objectives = runs[0].objectives
    header = ["run", "hv (own ref)", "hv z", "hv (shared ref)", "igd (union)", "igd (given)", "spacing", "sparsity",
              "inner product", *[f"ρ {o}" for o in objectives], "collapse", "net win", "non-dom."]
    rows = []
    for run in runs:
        m = run.result["metrics"]
        rho = m["controllability"]["value"]
        rows.append([run.label, _fmt(m["hypervolume"]["value"]), _fmt(m.get("hypervolume_z", {}).get("value")),
                     _fmt(compared["hv_shared"]["value"][run.label]),
                     _fmt(compared.get("igd_union", {}).get("value", {}).get(run.label)),
                     _fmt(m.get("igd", {}).get("value")), _fmt(m["spacing"]["value"]), _fmt(m["sparsity"]["value"]),
                     _fmt(m["inner_product"]["value"]), *[_fmt(rho.get(o)) for o in objectives],
                     _fmt(m["collapse_rate"]["value"]),
                     _fmt(m.get("win_rate", {}).get("value", {}).get("overall", {}).get("net")),
                     f"{m['n_points']['nondominated']}/{m['n_points']['value']}"])
    return header, rows


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def markdown_table(runs: list[RunResult], compared: dict) -> str:
    header, rows = table_rows(runs, compared)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    notes = ["", "Parameters:", f"- hv (shared ref): reference {np.round(compared['hv_shared']['reference'], 4).tolist()} "
             "(raw units; per-objective min of the runs' own references)"]
    if "igd_union" in compared:
        notes.append("- igd (union): raw units, against the non-dominated points of all runs in this report")
    for run in runs:
        m = run.result["metrics"]
        notes.append(f"- {run.label}: hv reference {np.round(m['hypervolume']['reference'], 4).tolist()} "
                     f"({m['hypervolume']['reference_rule']}); spacing/sparsity in {m['spacing']['space']} space; "
                     f"{len(run.result['points'])} preferences ({run.result['grid']}) x {run.result['n_prompts']} prompts, seed {run.result['seed']}")
        if "win_rate" in m:
            notes.append(f"  - win rate: judge {m['win_rate']['judge'].get('judge')}, position swap {m['win_rate']['swap']}, "
                         f"tie rule {m['win_rate']['judge'].get('tie_rule')}")
    notes.append("- ρ: Spearman correlation of w_i with the mean score on objective i over the grid (– = undefined)")
    return "\n".join(lines + notes) + "\n"


def write_report(run_dirs: list[Path], out_dir: Path, samples_per_point: int = 8) -> Path:
    """Write fronts.png, metrics.md, metrics.json and index.html for ``run_dirs`` into ``out_dir``."""
    from moalign.eval.html import render_html
    from moalign.plot import FrontSeries, save_fronts

    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise ValueError("moalign report needs at least one run directory")
    runs = [load_run(p, label, samples_per_point) for p, label in zip(run_dirs, _labels(run_dirs))]
    for run in runs[1:]:
        if run.objectives != runs[0].objectives:
            raise ValueError(f"{run.run_dir} scores {run.objectives} but {runs[0].run_dir} scores {runs[0].objectives}; "
                             "a report compares runs on the same objectives")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compared = comparison(runs)
    series = [FrontSeries(r.label, r.ws, r.points, r.se) for r in runs]
    save_fronts(series, runs[0].objectives, out_dir / "fronts.png")
    atomic_write_text(out_dir / "metrics.md", markdown_table(runs, compared))
    summary = {"runs": [{"label": r.label, "run_dir": str(r.run_dir), **r.result} for r in runs], "comparison": compared}
    atomic_write_json(out_dir / "metrics.json", json.loads(json.dumps(summary, default=_plain)))
    header, rows = table_rows(runs, compared)
    atomic_write_text(out_dir / "index.html", render_html(runs, header, rows))
    return out_dir


def _plain(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def report_command(run_dirs: list[str], out: str | Path | None, *, overwrite: bool = False) -> int:
    """``moalign report``: default output is RUN_DIR/report for one run, ./report for several (refreshed in
    place: moalign's own folder); an explicit ``out`` is written whole to a temporary folder and installed
    atomically, refused when something is there unless ``overwrite``."""
    runs = [Path(p) for p in run_dirs]
    if out is None:
        path = write_report(runs, runs[0] / "report" if len(runs) == 1 else Path("report"))
    else:
        path = Path(out)
        with atomic_dir(path, overwrite=overwrite) as tmp:
            write_report(runs, tmp)
    print(f"report: {path / 'index.html'}\n        {path / 'fronts.png'}\n        {path / 'metrics.md'}")
    return 0
