"""Turn raw columns (from any file format) into validated :class:`ScoredSet` / :class:`PairSet` records.

Every problem raises :class:`DataValidationError` naming the file, the row (1-based; for JSON lines the line
number an editor shows) and the field, and saying how to fix it. Checked: missing or misspelt columns (with
a did-you-mean), missing/null values, non-text prompts, non-numeric, NaN or infinite scores, score vectors
of the wrong length, empty files and duplicate ids. Columns moalign does not use are ignored.

Pair scores may be unknown (null or NaN, kept as NaN); scores of scored responses must all be finite.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import numpy as np

from moalign.data.schema import DataValidationError, PairSet, ScoredSet

SCORE_PREFIX = "score."
CHOSEN_PREFIX = "chosen_score."
REJECTED_PREFIX = "rejected_score."
VECTOR_COLUMN = "scores"


@dataclass
class RawTable:
    """Columns read from a file, plus the row number (1-based; JSONL: line number) of each record."""

    source: str
    columns: dict[str, list]
    rows: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def error(self, message: str, i: int | None = None, field: str | None = None) -> DataValidationError:
        return DataValidationError(message, file=self.source, row=None if i is None else self.rows[i], field=field)


# ------------------------------------------------------------------------------------------------------
# records
# ------------------------------------------------------------------------------------------------------


def scored_from_table(t: RawTable, objectives: list[str] | None = None) -> ScoredSet:
    """Validate ``t`` as scored responses (columns ``prompt``, ``response``, ``score.<objective>``, ``id``)."""
    _require_rows(t)
    objectives = check_objective_names(objectives)
    prompts = _text_column(t, "prompt")
    responses = _text_column(t, "response")
    names, scores = _score_matrix(t, objectives)
    return ScoredSet(prompts=prompts, responses=responses, scores=scores, objectives=names, ids=_id_column(t))


def pairs_from_table(t: RawTable, objectives: list[str] | None = None) -> PairSet:
    """Validate ``t`` as preference pairs (``prompt``, ``chosen``, ``rejected``, ``objective``, scores, ``id``)."""
    _require_rows(t)
    objectives = check_objective_names(objectives)
    prompts, chosen, rejected = (_text_column(t, name) for name in ("prompt", "chosen", "rejected"))
    labels = _objective_column(t, objectives)
    names, chosen_scores, rejected_scores = _pair_scores(t, objectives, labels)
    return PairSet(
        prompts=prompts, chosen=chosen, rejected=rejected, objective=labels,
        chosen_scores=chosen_scores, rejected_scores=rejected_scores, objectives=names, ids=_id_column(t),
    )


def check_objective_names(objectives: list[str] | None) -> list[str] | None:
    """None, or a list of distinct non-empty names (a single string is refused: it is a common slip)."""
    if objectives is None:
        return None
    if isinstance(objectives, str) or not all(isinstance(o, str) and o for o in objectives):
        raise ValueError(f"objectives must be a list of non-empty names, got {objectives!r}")
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"objectives must be distinct, got {list(objectives)!r}")
    return list(objectives)


# ------------------------------------------------------------------------------------------------------
# columns
# ------------------------------------------------------------------------------------------------------


def _require_rows(t: RawTable) -> None:
    if len(t) == 0:
        raise t.error("the data has no rows (empty file?); write at least one record")


def _require_column(t: RawTable, name: str, fix: str | None = None) -> list:
    if name in t.columns:
        return t.columns[name]
    present = list(t.columns)
    same_kind = [c for c in present if _column_kind(c) == _column_kind(name)]  # never 'chosen' -> 'chosen_score.a'
    close = difflib.get_close_matches(name, same_kind, n=1, cutoff=0.6)
    if close:
        fix = f"did you mean {close[0]!r}? rename that column to {name!r}"
    fix = fix or f"add a {name!r} column"
    raise t.error(f"missing column {name!r}; {fix} (columns found: {', '.join(present) or 'none'})", field=name)


def _column_kind(name: str) -> str:
    """The score prefix a column name starts with, or '' for a text column: did-you-mean stays within a kind."""
    return next((p for p in (CHOSEN_PREFIX, REJECTED_PREFIX, SCORE_PREFIX) if name.startswith(p)), "")


def _text_column(t: RawTable, name: str) -> list[str]:
    values = _require_column(t, name)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            got = "missing or null" if v is None else f"a {type(v).__name__} ({str(v)[:40]!r}), not text"
            raise t.error(f"{got}; every row needs text in this field", i, name)
    return list(values)


def _id_column(t: RawTable) -> list[str]:
    """String ids; without an ``id`` column rows are numbered 0, 1, ... in file order."""
    if "id" not in t.columns:
        return [str(i) for i in range(len(t))]
    ids, first = [], {}
    for i, v in enumerate(t.columns["id"]):
        if v is None or isinstance(v, bool) or not isinstance(v, (str, int)):
            raise t.error(f"expected a string or integer id, got {v!r}", i, "id")
        key = str(v)
        if key in first:
            raise t.error(
                f"duplicate id {key!r} (first used at row {t.rows[first[key]]}); ids must be unique: "
                "renumber them, or remove the id column to have rows numbered automatically", i, "id",
            )
        first[key] = i
        ids.append(key)
    return ids


def score_value(t: RawTable, i: int, field: str, v, allow_missing: bool) -> float:
    """One validated score; None/NaN become NaN only where ``allow_missing``."""
    if v is None and allow_missing:
        return math.nan
    if v is None:
        raise t.error("missing or null score; every row needs a number for each objective "
                      "(fill it in or drop the row)", i, field)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise t.error(f"expected a number, got {type(v).__name__} {str(v)[:40]!r}; write scores as JSON numbers",
                      i, field)
    v = float(v)
    if math.isnan(v) and not allow_missing:
        raise t.error("score is NaN; every score must be a finite number (fix the scorer or drop the row)", i, field)
    if math.isinf(v):
        raise t.error(f"score is {v}; every score must be finite (clip it or drop the row)", i, field)
    return v


def _number_column(t: RawTable, name: str, allow_missing: bool = False) -> np.ndarray:
    values = _require_column(t, name)
    return np.array([score_value(t, i, name, v, allow_missing) for i, v in enumerate(values)], dtype=np.float64)


def _score_matrix(t: RawTable, objectives: list[str] | None) -> tuple[list[str], np.ndarray]:
    score_columns = [c for c in t.columns if c.startswith(SCORE_PREFIX)]
    if VECTOR_COLUMN in t.columns and not score_columns:
        return _vector_scores(t, objectives)
    names = [c[len(SCORE_PREFIX):] for c in score_columns] if objectives is None else objectives
    matrix = np.zeros((len(t), len(names)))
    for j, name in enumerate(names):
        matrix[:, j] = _number_column(t, SCORE_PREFIX + name)
    return names, matrix


def _vector_scores(t: RawTable, objectives: list[str] | None) -> tuple[list[str], np.ndarray]:
    """The alternative layout: one ``scores`` column holding a list (needs ``objectives``) or a mapping."""
    values = t.columns[VECTOR_COLUMN]
    first = next((v for v in values if v is not None), None)
    if isinstance(first, dict) and objectives is None:
        objectives = list(first)
    if objectives is None:
        raise t.error("the 'scores' column holds lists but the objectives are not named; pass "
                      "objectives=[...] in list order, or write one 'score.<objective>' column per objective",
                      field=VECTOR_COLUMN)
    matrix = np.zeros((len(t), len(objectives)))
    for i, v in enumerate(values):
        if isinstance(v, dict):
            for j, name in enumerate(objectives):
                if name not in v:
                    close = difflib.get_close_matches(name, list(v), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise t.error(f"the score for objective {name!r} is missing{hint}", i, f"scores.{name}")
                matrix[i, j] = score_value(t, i, f"scores.{name}", v[name], False)
        elif isinstance(v, (list, tuple)):
            if len(v) != len(objectives):
                raise t.error(f"score vector has {len(v)} entries but {len(objectives)} objectives are expected "
                              f"({', '.join(objectives)}); give one score per objective, in that order",
                              i, VECTOR_COLUMN)
            matrix[i] = [score_value(t, i, f"scores[{j}]", x, False) for j, x in enumerate(v)]
        else:
            raise t.error(f"expected a list or mapping of scores, got {v!r}", i, VECTOR_COLUMN)
    return objectives, matrix


def _objective_column(t: RawTable, objectives: list[str] | None) -> list[str]:
    if "objective" not in t.columns and objectives is not None and len(objectives) == 1:
        return [objectives[0]] * len(t)
    labels = _text_column(t, "objective") if "objective" in t.columns else _require_column(
        t, "objective", "add an 'objective' column naming the objective each pair is for "
        "(or load with exactly one objective to label every pair with it)")
    if objectives is not None:
        for i, label in enumerate(labels):
            if label not in objectives:
                close = difflib.get_close_matches(label, objectives, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise t.error(f"objective {label!r} is not one of {objectives}; {hint}fix the label, or load "
                              "without objectives and use PairSet.for_objective to keep a subset", i, "objective")
    return labels


def _pair_scores(t: RawTable, objectives: list[str] | None, labels: list[str]):
    """(names, chosen (n,k), rejected (n,k)); both None when the file carries no scores."""
    chosen_names = [c[len(CHOSEN_PREFIX):] for c in t.columns if c.startswith(CHOSEN_PREFIX)]
    rejected_names = [c[len(REJECTED_PREFIX):] for c in t.columns if c.startswith(REJECTED_PREFIX)]
    if not chosen_names and not rejected_names:
        return (objectives if objectives is not None else list(dict.fromkeys(labels))), None, None
    names = objectives if objectives is not None else chosen_names or rejected_names
    chosen = np.zeros((len(t), len(names)))
    rejected = np.zeros((len(t), len(names)))
    for j, name in enumerate(names):
        chosen[:, j] = _number_column(t, CHOSEN_PREFIX + name, allow_missing=True)
        rejected[:, j] = _number_column(t, REJECTED_PREFIX + name, allow_missing=True)
    return names, chosen, rejected
