"""``moalign report RUN_DIR [RUN_DIR ...]``: fronts (PNG), a metrics table (Markdown + JSON) and an HTML page.

Comparing several runs (methods) on one task is the main use. Besides each run's own metrics, the report
computes two comparison metrics over all the runs given, stated as such in the table:

* ``hv_shared``: every run's hypervolume against ONE reference point, the per-objective minimum of the runs'
  own reference points (raw units), so the numbers are comparable even if the runs' rules differed;
* ``igd_union``: IGD of each run against the non-dominated points of all runs together (raw units).

Both use each run's points as its own indicators did: degenerate points (``metrics.degenerate``) are left out
unless that run set ``eval.include_degenerate``; a run with no point left gets None (shown as "–"). The
"degenerate" column says how many points were degenerate and whether they were excluded.
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

    @property
    def degenerate(self) -> np.ndarray:
        """Mask of the degenerate points (all False for a run evaluated before points were flagged)."""
        return np.array([bool(p.get("degenerate", False)) for p in self.result["points"]], dtype=bool)

    @property
    def include_degenerate(self) -> bool:
        return bool(self.result.get("metrics", {}).get("degenerate", {}).get("included", False))

    @property
    def used(self) -> np.ndarray:
        """Mask of the points the run's front indicators were computed over."""
        return np.ones(len(self.degenerate), dtype=bool) if self.include_degenerate else ~self.degenerate


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

    refs = [r.result["metrics"]["hypervolume"]["reference"] for r in runs]
    refs = np.array([ref for ref in refs if ref is not None], dtype=float)
    shared = refs.min(axis=0) if len(refs) else None
    values = {r.label: hypervolume(r.points[r.used], shared) if shared is not None and r.used.any() else None
              for r in runs}
    out = {"hv_shared": {"reference": shared, "space": "raw", "value": values,
                         "reference_rule": "per-objective min of the runs' references (runs with none left out)",
                         "points": "each run's non-degenerate points, unless it set eval.include_degenerate"}}
    union = np.concatenate([r.points[r.used] for r in runs])
    if len(runs) > 1 and len(union):
        front = union[is_nondominated(union)]
        out["igd_union"] = {"space": "raw", "reference_front": "non-dominated points of all runs in this report",
                            "front": front, "value": {r.label: igd(r.points[r.used], front) if r.used.any() else None
                                                      for r in runs}}
    return out


def degenerate_note(result: dict) -> str | None:
    """One line on a run's degenerate points (None when it has none): how many, which, and what was done."""
    entry = result["metrics"].get("degenerate")
    if not entry or not entry["value"]:
        return None
    done = ("included in the front indicators (eval.include_degenerate=true)" if entry["included"] else
            "excluded from the front indicators (eval.include_degenerate=true keeps them)")
    return (f"{entry['value']}/{len(result['points'])} preference points are degenerate (collapse rate >= "
            f"{entry['threshold']:g}): {', '.join(entry['keys'])}; {done}")


def _degenerate_cell(run: RunResult) -> str:
    entry = run.result["metrics"].get("degenerate")
    if entry is None:
        return "–"
    text = f"{entry['value']}/{len(run.result['points'])}"
    return text if not entry["value"] else f"⚠ {text} {'included' if entry['included'] else 'excluded'}"


def table_rows(runs: list[RunResult], compared: dict) -> tuple[list[str], list[list[str]]]:
    """Header and one row of formatted values per run (the Markdown and HTML tables)."""
    objectives = runs[0].objectives
    header = ["run", "hv (own ref)", "hv z", "hv (shared ref)", "igd (union)", "igd (given)", "spacing", "sparsity",
              "inner product", *[f"ρ {o}" for o in objectives], "collapse", "degenerate", "net win", "non-dom."]
    rows = []
    for run in runs:
        m = run.result["metrics"]
        rho = m["controllability"]["value"]
        rows.append([run.label, _fmt(m["hypervolume"]["value"]), _fmt(m.get("hypervolume_z", {}).get("value")),
                     _fmt(compared["hv_shared"]["value"][run.label]),
                     _fmt(compared.get("igd_union", {}).get("value", {}).get(run.label)),
                     _fmt(m.get("igd", {}).get("value")), _fmt(m["spacing"]["value"]), _fmt(m["sparsity"]["value"]),
                     _fmt(m["inner_product"]["value"]), *[_fmt(rho.get(o)) for o in objectives],
                     _fmt(m["collapse_rate"]["value"]), _degenerate_cell(run),
                     _fmt(m.get("win_rate", {}).get("value", {}).get("overall", {}).get("net")),
                     _nondominated_cell(m["n_points"]["nondominated"], run)])
    return header, rows


def _nondominated_cell(nondominated: int | None, run: RunResult) -> str:
    """Non-dominated points over the points the indicators used."""
    return f"{'–' if nondominated is None else nondominated}/{int(run.used.sum())}"


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def markdown_table(runs: list[RunResult], compared: dict) -> str:
    header, rows = table_rows(runs, compared)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    shared = compared["hv_shared"]["reference"]
    notes = [line for text in warning_lines(runs) for line in ("", f"**Warning** {text}")]
    notes += ["", "Parameters:",
             f"- hv (shared ref): reference {'undefined' if shared is None else np.round(shared, 4).tolist()} "
             "(raw units; per-objective min of the runs' own references)"]
    if "igd_union" in compared:
        notes.append("- igd (union): raw units, against the non-dominated points of all runs in this report")
    for run in runs:
        m = run.result["metrics"]
        ref, rule = m["hypervolume"]["reference"], m["hypervolume"]["reference_rule"]
        notes.append(f"- {run.label}: hv reference {rule if ref is None else f'{np.round(ref, 4).tolist()} ({rule})'}; "
                     f"spacing/sparsity in {m['spacing']['space']} space; "
                     f"{len(run.result['points'])} preferences ({run.result['grid']}) x {run.result['n_prompts']} prompts, seed {run.result['seed']}")
        if "win_rate" in m:
            notes.append(f"  - win rate: judge {m['win_rate']['judge'].get('judge')}, position swap {m['win_rate']['swap']}, "
                         f"tie rule {m['win_rate']['judge'].get('tie_rule')}")
    notes.append("- ρ: Spearman correlation of w_i with the mean score on objective i over the grid (– = undefined)")
    notes.append("- degenerate: points whose collapse rate is >= eval.degenerate_threshold; excluded from every "
                 "indicator of the row (and from non-dom.) unless the run set eval.include_degenerate")
    return "\n".join(lines + notes) + "\n"


def warning_lines(runs: list[RunResult]) -> list[str]:
    """One paragraph per run with degenerate points (the likely causes added when all its points are)."""
    out = []
    for run in runs:
        note, entry = degenerate_note(run.result), run.result["metrics"].get("degenerate", {})
        if note:
            out.append(f"{run.label}: {note}." + (f" {entry['warning']}" if entry.get("warning") else ""))
    return out


def load_runs(run_dirs: list[Path], samples_per_point: int = 8) -> list[RunResult]:
    """The evaluated runs of a report, labelled (:func:`_labels`); they must score the same objectives."""
    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise ValueError("moalign report needs at least one run directory")
    runs = [load_run(p, label, samples_per_point) for p, label in zip(run_dirs, _labels(run_dirs))]
    for run in runs[1:]:
        if run.objectives != runs[0].objectives:
            raise ValueError(f"{run.run_dir} scores {run.objectives} but {runs[0].run_dir} scores {runs[0].objectives}; "
                             "a report compares runs on the same objectives")
    return runs


def metrics_table(run_dirs: list[Path]) -> str:
    """The report's metrics table (:func:`table_rows`) for a terminal: one line per metric, one column per run,
    aligned; a metric undefined ("–") for every run is left out. The report's metrics.md explains each one."""
    runs = load_runs(run_dirs, samples_per_point=0)
    header, rows = table_rows(runs, comparison(runs))
    lines = [[name, *(row[i] for row in rows)] for i, name in enumerate(header)]
    lines = [lines[0], *(line for line in lines[1:] if any(cell != "–" for cell in line[1:]))]
    widths = [max(len(line[j]) for line in lines) for j in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def write_report(run_dirs: list[Path], out_dir: Path, samples_per_point: int = 8) -> Path:
    """Write fronts.png, metrics.md, metrics.json and index.html for ``run_dirs`` into ``out_dir``."""
    from moalign.eval.html import render_html
    from moalign.plot import FrontSeries, save_fronts

    runs = load_runs(run_dirs, samples_per_point)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compared = comparison(runs)
    series = [FrontSeries(r.label, r.ws, r.points, r.se, r.degenerate, r.include_degenerate) for r in runs]
    save_fronts(series, runs[0].objectives, out_dir / "fronts.png")
    atomic_write_text(out_dir / "metrics.md", markdown_table(runs, compared))
    summary = {"runs": [{"label": r.label, "run_dir": str(r.run_dir), **r.result} for r in runs], "comparison": compared}
    atomic_write_json(out_dir / "metrics.json", json.loads(json.dumps(summary, default=_plain)))
    header, rows = table_rows(runs, compared)
    atomic_write_text(out_dir / "index.html", render_html(runs, header, rows, warnings=warning_lines(runs)))
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
