"""The evaluation harness: sweep a policy family over a preference grid, score, measure, report.

Stages inside the run directory (each atomic, each skipped when its inputs are unchanged; see pipeline.py)::

    eval/prompts                 the fixed, seeded test prompts (+ golden answers)
    eval/train_stats             train-set z-score statistics of the run's rewards (unless normalization=none)
    eval/generate/<tag>          one folder per preference (tag w=0.30,0.70): generations.jsonl
    eval/score/<tag>             rows.jsonl (per-prompt scores, collapse flag) and point.json (mean, se)
    eval/judge/<tag>             win rate against the golden answers (when eval.win_rate)
    eval/metrics                 metrics.json: every front metric with its parameters, and the points
                                 (each flagged ``degenerate`` when its collapse rate >= eval.degenerate_threshold;
                                 degenerate points are left out of the front indicators, see metrics.py)
    report                       fronts.png, metrics.md/json, index.html

``python -m moalign.eval.harness CONFIG [key=value ...]`` is ``moalign eval CONFIG ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moalign import distributed
from moalign.checks import validate_run_config
from moalign.config import RunConfig, apply_overrides, from_dict, load_yaml, save_config
from moalign.console import echo, nested_progress
from moalign.eval.family import PolicyFamily
from moalign.eval.grid import eval_grid
from moalign.eval.inputs import load_prompts, load_zscore, prompts_stage, stats_stage
from moalign.eval.report import degenerate_note, metrics_table, write_report
from moalign.eval.rows import file_digest, read_rows, write_rows
from moalign.eval.score import score_stage
from moalign.eval.stages import METRICS_STAGE, PROMPTS_STAGE, REPORT_STAGE
from moalign.eval.sweep import generation_stage
from moalign.io_utils import atomic_write_json
from moalign.pipeline import Run
from moalign.rewards.lazy import LazyRewards
from moalign.shipped_configs import resolve_config


def evaluate(config: RunConfig, family: PolicyFamily, run: Run, rewards: Sequence | None = None) -> dict:
    """Run every evaluation stage of ``family`` inside ``run``; returns the content of ``metrics.json``.

    ``rewards`` (objects with ``.name`` and ``__call__``) replaces ``config.task.rewards`` when given.
    """
    objectives = list(config.task.objectives)
    get_rewards = LazyRewards.for_task(config.task, rewards)
    grid = eval_grid(config)
    ws = grid.points
    prompts_stage(run, config)
    stats = stats_stage(run, config, get_rewards, get_rewards.identity)
    scores, judges = [], []
    get_judge = _Judge(config.eval, objectives, get_rewards)
    inner = nested_progress(config.eval.progress)  # per-point bars inside the "preferences" bar: verbose only
    for w, tag in _progress(list(zip(ws, grid.tags)), config.eval.progress, "preferences"):
        generated = generation_stage(run, family, w, tag, config.eval.generation, config.eval.seed, inner,
                                     dtype=config.model.dtype, trust_remote_code=config.model.trust_remote_code)
        scores.append(score_stage(run, generated, objectives, get_rewards, get_rewards.identity, inner))
        if config.eval.win_rate:
            judges.append(_judge_stage(run, config, scores[-1], objectives, get_rewards, get_judge))
    _metrics_stage(run, config, family, ws, scores, judges, stats)
    run.stage(REPORT_STAGE, {"runs": [str(run.root.resolve())]}, _write_own_report(run), depends_on=[METRICS_STAGE])
    result = load_metrics(run.root)
    _warn_if_all_degenerate(result)
    return result


def _warn_if_all_degenerate(result: dict) -> None:
    """A warning on every evaluation (also a resumed one) whose points are all degenerate."""
    import warnings

    from moalign.eval.metrics import DegenerateResultWarning

    text = result["metrics"].get("degenerate", {}).get("warning")
    if text:
        warnings.warn(f"{result['name']}: {text}", DegenerateResultWarning, stacklevel=3)


def load_metrics(run_dir: str | Path) -> dict:
    import json

    return json.loads((Path(run_dir) / METRICS_STAGE / "metrics.json").read_text())


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="w")


def _judge_stage(run: Run, config: RunConfig, scored: str, objectives: list[str], get_rewards, get_judge) -> str:
    """Win rate of one preference's responses against the golden answers (see judge.py for the protocol)."""
    from moalign.eval import judge as judging

    name = scored.replace("eval/score/", "eval/judge/", 1)
    settings = config.eval
    inputs = {"judge": settings.judge, "tie_margin": settings.judge_tie_margin, "swap": settings.judge_swap,
              "criteria": settings.judge_criteria, "rewards": get_rewards.identity, "template": judging.JUDGE_TEMPLATE}

    def compute(tmp: Path) -> None:
        golden = load_prompts(run).golden
        if golden is None:
            raise ValueError("eval.win_rate=true needs golden answers: the task has none; give eval.prompts_file "
                             "with a 'golden' field on every row, or set eval.win_rate=false")
        judge = get_judge()
        rows = read_rows(run.stage_dir(scored) / "rows.jsonl")
        prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
        references = [golden[r["index"]] for r in rows]
        verdicts = judging.judge_all(judge, prompts, responses, references, objectives, settings.judge_swap)
        write_rows(tmp / "verdicts.jsonl", ({"index": r["index"], **{c: int(v[j]) for c, v in verdicts.items()}}
                                            for j, r in enumerate(rows)))
        atomic_write_json(tmp / "win_rate.json", {"w": rows[0]["w"], "rates": judging.win_rates(verdicts),
                                                  "judge": judge.describe(), "swap": settings.judge_swap})

    run.stage(name, inputs, compute, depends_on=[scored, PROMPTS_STAGE])
    return name


class _Judge:
    """The judge, built on first use and then reused for the whole grid (an LM judge loads once)."""

    def __init__(self, settings, objectives: list[str], get_rewards):
        self.settings, self.objectives, self.get_rewards, self._judge = settings, objectives, get_rewards, None

    def __call__(self):
        from moalign.eval.judge import build_judge

        if self._judge is None:
            s = self.settings
            self._judge = build_judge(s.judge, self.objectives, self.get_rewards, s.judge_tie_margin, s.judge_criteria)
        return self._judge


def _metrics_stage(run: Run, config: RunConfig, family, ws, scores, judges, stats) -> None:
    settings = config.eval
    inputs = {"objectives": config.task.objectives, "hv_reference": settings.hv_reference,
              "hv_reference_z": settings.hv_reference_z, "reference_front": settings.reference_front,
              "reference_front_digest": file_digest(settings.reference_front) if settings.reference_front else None,
              "degenerate_threshold": settings.degenerate_threshold, "include_degenerate": settings.include_degenerate}
    deps = [*scores, *judges, *([stats] if stats else [])]
    run.stage(METRICS_STAGE, inputs, lambda tmp: _compute_metrics(tmp, run, config, family, ws, scores, judges, stats),
              depends_on=deps)


def _compute_metrics(tmp: Path, run: Run, config: RunConfig, family, ws, scores, judges, stats) -> None:
    import json

    from moalign.eval.metrics import degenerate_points, front_metrics, load_reference_front

    objectives = list(config.task.objectives)
    points = [_point_with_reasons(run, s) for s in scores]
    flags = degenerate_points([p["collapse_rate"] for p in points], config.eval.degenerate_threshold)
    means = np.array([p["mean"] for p in points])
    front = load_reference_front(config.eval.reference_front) if config.eval.reference_front else None
    metrics = front_metrics(ws, means, objectives, load_zscore(run, stats), config.eval.hv_reference,
                            config.eval.hv_reference_z, front, config.eval.reference_front,
                            degenerate=flags, include_degenerate=config.eval.include_degenerate)
    _record_degenerate(metrics["degenerate"], points, flags, scores, config.eval.degenerate_threshold)
    rates = [p["collapse_rate"] for p in points]
    metrics["collapse_rate"] = {"value": float(np.average(rates, weights=[p["n"] for p in points])),
                                "per_w": rates, "rule": "moalign.eval.collapse.is_collapsed (see its docstring)"}
    if judges:
        metrics["win_rate"] = _pooled_win_rate(run, judges)
    result = {"name": run.root.name, "family": family.describe(), "objectives": objectives, "grid": config.eval.grid,
              "n_prompts": points[0]["n"], "seed": config.eval.seed, "generation": config.eval.generation,
              "points": [{**p, "key": s.rsplit("/", 1)[-1]} for p, s in zip(points, scores)], "metrics": metrics}
    atomic_write_json(tmp / "metrics.json", json.loads(json.dumps(result, default=_plain)))


def _point_with_reasons(run: Run, scored: str) -> dict:
    """``point.json`` plus how its responses collapsed: counts per reason and the most common one."""
    import json
    from collections import Counter

    from moalign.eval.collapse import collapse_reason

    point = json.loads((run.stage_dir(scored) / "point.json").read_text())
    reasons = Counter(collapse_reason(r["response"]) for r in read_rows(run.stage_dir(scored) / "rows.jsonl"))
    reasons.pop(None, None)
    point["collapse_reasons"] = dict(reasons.most_common())
    point["main_collapse_reason"] = reasons.most_common(1)[0][0] if reasons else None
    return point


def _record_degenerate(entry: dict, points: list[dict], flags, scores: list[str], threshold: float) -> None:
    """Flag each point, and complete ``metrics.degenerate`` with the rule, the keys and the all-degenerate warning."""
    from collections import Counter

    from moalign.eval.metrics import DEGENERATE_RULE, all_degenerate_warning

    for point, flag in zip(points, flags):
        point["degenerate"] = bool(flag)
    keys = [s.rsplit("/", 1)[-1] for s, flag in zip(scores, flags) if flag]
    reasons = sum((Counter(p["collapse_reasons"]) for p in points), Counter())
    main = reasons.most_common(1)[0][0] if reasons else None
    warning = all_degenerate_warning(len(points), threshold, main) if len(keys) == len(points) else None
    entry.update({"threshold": threshold, "rule": DEGENERATE_RULE, "keys": keys, "warning": warning})


def _pooled_win_rate(run: Run, judges: list[str]) -> dict:
    """Win/tie/loss pooled over every preference and prompt, plus the per-w rates and the judge protocol."""
    import json

    from moalign.eval.judge import win_rates

    pooled: dict[str, list[int]] = {}
    per_w = []
    for stage in judges:
        for row in read_rows(run.stage_dir(stage) / "verdicts.jsonl"):
            for criterion, verdict in row.items():
                if criterion != "index":
                    pooled.setdefault(criterion, []).append(verdict)
        per_w.append(json.loads((run.stage_dir(stage) / "win_rate.json").read_text()))
    protocol = {"judge": per_w[0]["judge"], "swap": per_w[0]["swap"], "against": "golden responses"}
    return {"value": win_rates({c: np.array(v) for c, v in pooled.items()}), **protocol,
            "per_w": [{"w": p["w"], "rates": p["rates"]} for p in per_w]}


def _plain(obj):
    from moalign.config import to_dict

    if hasattr(obj, "tolist"):
        return obj.tolist()
    return to_dict(obj) if hasattr(obj, "__dataclass_fields__") else str(obj)


def _write_own_report(run: Run):
    def compute(tmp: Path) -> None:
        write_report([run.root], tmp)

    return compute


# ----------------------------------------------------------------------------------------------------------
# Command line: ``moalign eval CONFIG [overrides]``
# ----------------------------------------------------------------------------------------------------------


def load_eval_config(config_path: str | None, overrides: list[str]) -> RunConfig:
    """A RunConfig for evaluation; a ``method:`` section (a trained run's config) is kept as data, unread."""
    config_path = resolve_config(config_path) if config_path else None  # a file, or a shipped name
    data = apply_overrides(load_yaml(config_path) if config_path else {}, overrides)
    method = data.pop("method", None)
    config = from_dict(RunConfig, data, str(config_path or "config"))
    config.method = method
    return config


def resolve_family(config: RunConfig, run: Run) -> PolicyFamily:
    """``eval.family`` if set; else the run folder's saved family; else the base model alone."""
    from moalign.eval.family import SharedModelFamily, load_family

    if config.eval.family:
        return load_family(config.eval.family)
    if (run.root / "family.json").is_file():
        return load_family(run.root / "family.json")
    model = config.model
    return SharedModelFamily("base", model.name_or_path, dtype=model.dtype, trust_remote_code=model.trust_remote_code)


def evaluate_config(
    config: RunConfig, *, family: PolicyFamily | None = None, rewards: Sequence | None = None
) -> tuple[dict, Path]:
    """Evaluate ``family`` (default: :func:`resolve_family`) as ``config`` says, in ``config.run_dir`` (resuming
    finished stages); returns the metrics (``metrics.json``) and the run folder. ``moalign eval`` and
    :func:`moalign.evaluate` both run this."""
    validate_run_config(config, task_rewards=rewards is None)  # before the run directory is created or locked
    run = Run(config.run_dir, echo=echo)
    if distributed.is_main():
        save_config(config, run.root / _config_name(run.root, config))
    family = family if family is not None else resolve_family(config, run)
    return evaluate(config, family, run, rewards), run.root


def eval_command(config_path: str | None, overrides: list[str], rewards: Sequence | None = None) -> int:
    """``moalign eval``: evaluate the configured family in ``run_dir`` (resuming finished stages)."""
    config = load_eval_config(config_path, list(overrides))
    result, root = evaluate_config(config, rewards=rewards)
    if distributed.is_main():
        _print_summary(result, root)
    return 0


def _config_name(root: Path, config: RunConfig) -> str:
    """``config.yaml``, unless that file is a trained method's config (kept) and this is a plain evaluation."""
    existing = root / "config.yaml"
    if existing.is_file() and config.method is None and (load_yaml(existing) or {}).get("method") is not None:
        return "eval_config.yaml"
    return "config.yaml"


def _print_summary(result: dict, root: Path) -> None:
    metrics = result["metrics"]
    hv = metrics["hypervolume"]
    print(f"{result['name']}: {len(result['points'])} preferences x {result['n_prompts']} prompts")
    reference = "" if hv["reference"] is None else f"reference {np.round(hv['reference'], 4).tolist()}: "
    print(f"  hypervolume {_number(hv['value'])} (raw; {reference}{hv['reference_rule']})")
    if "hypervolume_z" in metrics:
        print(f"  hypervolume {_number(metrics['hypervolume_z']['value'])} (train z-scores)")
    note = degenerate_note(result)
    if note:
        print(f"  WARNING: {note}")
    if metrics.get("degenerate", {}).get("warning"):
        print(f"  WARNING: {metrics['degenerate']['warning']}")
    print(f"\n{metrics_table([root])}")  # collapse rate, net win rate and the other metrics, one per line
    print(f"report: {root / REPORT_STAGE / 'index.html'}")


def _number(value) -> str:
    return "undefined" if value is None else f"{value:.4g}"


def main(argv: Sequence[str] | None = None) -> int:
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m moalign.eval.harness CONFIG [key=value ...]")
        return 0
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return eval_command(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
