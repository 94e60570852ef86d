"""The names of the evaluation stages inside a run directory (one place, read by the harness and the report).

Per-preference stages are named by the preference's tag (:func:`moalign.pareto.preference_tag`):
``eval/generate/w=0.30,0.70``, then ``eval/score/...`` and ``eval/judge/...`` with the same tag.
"""

from __future__ import annotations

PROMPTS_STAGE = "eval/prompts"
STATS_STAGE = "eval/train_stats"
METRICS_STAGE = "eval/metrics"
REPORT_STAGE = "report"
GENERATE_PREFIX = "eval/generate/"
SCORE_PREFIX = "eval/score/"


def generation_stage_name(tag: str) -> str:
    return GENERATE_PREFIX + tag


def score_stage_name(tag: str) -> str:
    return SCORE_PREFIX + tag
