"""Preference pairs from scored responses, and preference conflicts between objectives.

**Pairs from scores** (:func:`pairs_from_scored`). Responses are grouped by identical prompt text. For each
objective separately, the response with the higher score is *chosen*; a pair is kept only when
``score(chosen) - score(rejected) > min_margin`` (so with the default ``min_margin=0`` ties are dropped).
Unknown scores (NaN) never enter a pair for that objective. How many pairs per prompt and objective:

* ``mode="all"``: every pair of responses that passes the margin (m responses give up to m(m-1)/2 pairs);
* ``mode="best_worst"``: one pair, the highest against the lowest score (first in data order on ties);
* ``mode="best_random"``: one pair, the highest against a response drawn uniformly (seeded) from those it
  beats by more than ``min_margin`` (UltraFeedback-binarized style).

Each pair carries the full score vectors of both responses (all of ``scored.objectives``).

**Winning responses** (:func:`winning_responses`, SFT data from pairs: Panacea's SFT variant). For each
objective and prompt, the responses that objective chose in some pair and rejected in none: from scores
(``mode="all"``) the top-scoring response (all of them on a tie at the top), from a dataset's single pair the
chosen one.

**Conflicts** (SIPO, spec section 11). Two responses to one prompt form a *comparison*; it is *conflicting*
when two objectives disagree on which of the two is chosen. An objective that ties on the comparison has no
pair for it and takes no part (SIPO's chosen_id = -1). A comparison ranked by only one objective is neither
conflicting nor agreeing.
"""

from __future__ import annotations

import difflib
from collections import defaultdict

import numpy as np

from moalign.data.schema import PairSet, ScoredSet

MODES = ("all", "best_worst", "best_random")


def pairs_from_scored(
    scored: ScoredSet,
    objectives: list[str] | None = None,
    min_margin: float = 0.0,
    mode: str = "all",
    seed: int = 0,
) -> PairSet:
    """Per-objective preference pairs from scored responses (rules in the module docstring).

    Pairs come out grouped by objective (in ``objectives`` order), then by prompt (first appearance), then
    by response order. A pair's id is ``"<objective>:<chosen id>><rejected id>"``.
    """
    names = _resolve_objectives(scored.objectives, objectives)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: use one of {', '.join(MODES)}")
    if not np.isfinite(min_margin) or min_margin < 0:
        raise ValueError(f"min_margin={min_margin!r}: must be a finite number >= 0")
    groups = group_by_prompt(scored.prompts)
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, int, int]] = []
    for name in names:
        column = scored.scores[:, scored.objectives.index(name)]
        for members in groups:
            rows.extend((name, c, r) for c, r in _group_pairs(column, members, min_margin, mode, rng))
    return _pairset(scored, rows)


def group_by_prompt(prompts: list[str]) -> list[list[int]]:
    """Indices of the responses to each distinct prompt, prompts in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    return list(groups.values())


def _group_pairs(column: np.ndarray, members: list[int], min_margin: float, mode: str, rng):
    """(chosen, rejected) row indices for one prompt and one objective."""
    valid = [i for i in members if not np.isnan(column[i])]
    if len(valid) < 2:
        return []
    if mode == "all":
        out = []
        for a_pos, a in enumerate(valid):
            for b in valid[a_pos + 1:]:
                if column[a] - column[b] > min_margin:
                    out.append((a, b))
                elif column[b] - column[a] > min_margin:
                    out.append((b, a))
        return out
    values = column[valid]
    best = valid[int(np.argmax(values))]
    if mode == "best_worst":
        worst = valid[int(np.argmin(values))]
        return [(best, worst)] if column[best] - column[worst] > min_margin else []
    beaten = [i for i in valid if column[best] - column[i] > min_margin]
    return [(best, beaten[int(rng.integers(len(beaten)))])] if beaten else []


def _pairset(scored: ScoredSet, rows: list[tuple[str, int, int]]) -> PairSet:
    chosen_idx = np.array([c for _, c, _ in rows], dtype=int)
    rejected_idx = np.array([r for _, _, r in rows], dtype=int)
    k = len(scored.objectives)
    return PairSet(
        prompts=[scored.prompts[c] for _, c, _ in rows],
        chosen=[scored.responses[c] for _, c, _ in rows],
        rejected=[scored.responses[r] for _, _, r in rows],
        objective=[name for name, _, _ in rows],
        chosen_scores=scored.scores[chosen_idx].reshape(-1, k),
        rejected_scores=scored.scores[rejected_idx].reshape(-1, k),
        objectives=list(scored.objectives),
        ids=[f"{name}:{scored.ids[c]}>{scored.ids[r]}" for name, c, r in rows],
    )


def _resolve_objectives(available: list[str], wanted: list[str] | None) -> list[str]:
    if wanted is None:
        return list(available)
    if isinstance(wanted, str):
        raise ValueError(f"objectives must be a list of names, got the string {wanted!r}")
    for name in wanted:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"objective {name!r} is not scored here; {hint}available: {', '.join(available)}")
    return list(wanted)


def winning_responses(pairs: PairSet, objectives: list[str] | None = None) -> dict[str, ScoredSet]:
    """Per objective (default: in order of first appearance), the responses it ranks top (module docstring),
    each once, in pair order; a response's id is that of the first pair it wins, its scores the chosen
    side's (NaN where unknown)."""
    names = list(dict.fromkeys(pairs.objective)) if objectives is None else list(objectives)
    width = len(pairs.objectives)
    scores = pairs.chosen_scores if pairs.chosen_scores is not None else np.full((len(pairs), width), np.nan)
    out = {}
    for name in names:
        rows = [i for i, o in enumerate(pairs.objective) if o == name]
        if not rows:
            raise ValueError(f"objective {name!r} has no pairs; pairs exist for {sorted(set(pairs.objective))}")
        beaten = {(pairs.prompts[i], pairs.rejected[i]) for i in rows}
        keep = {}
        for i in rows:
            key = (pairs.prompts[i], pairs.chosen[i])
            if key not in beaten and key not in keep:
                keep[key] = i
        index = list(keep.values())
        out[name] = ScoredSet([pairs.prompts[i] for i in index], [pairs.chosen[i] for i in index],
                              np.asarray(scores, dtype=np.float64).reshape(len(pairs), width)[index],
                              list(pairs.objectives), [pairs.ids[i] for i in index])
    return out


# ------------------------------------------------------------------------------------------------------
# conflicts
# ------------------------------------------------------------------------------------------------------


def comparisons(pairs: PairSet, objectives: list[str] | None = None) -> dict[tuple, dict[str, set[str]]]:
    """For each comparison ``(prompt, frozenset{a, b})``: objective -> the set of texts it chose."""
    keep = None if objectives is None else set(objectives)
    table: dict[tuple, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for prompt, chosen, rejected, name in zip(pairs.prompts, pairs.chosen, pairs.rejected, pairs.objective):
        if keep is None or name in keep:
            table[(prompt, frozenset((chosen, rejected)))][name].add(chosen)
    return table


def _is_conflict(votes: dict[str, set[str]]) -> bool:
    """Some two objectives chose different responses."""
    names = list(votes)
    return any(
        votes[a] != votes[b] or len(votes[a]) > 1 for i, a in enumerate(names) for b in names[i + 1:]
    )


def conflict_stats(pairs: PairSet, objectives: list[str] | None = None) -> dict[str, int]:
    """Counts of comparisons: ``ranked`` by >= 2 objectives, of which ``conflicting`` and ``agreeing``."""
    ranked = [votes for votes in comparisons(pairs, objectives).values() if len(votes) >= 2]
    conflicting = sum(_is_conflict(votes) for votes in ranked)
    return {"ranked": len(ranked), "conflicting": conflicting, "agreeing": len(ranked) - conflicting}


def count_conflicts(pairs: PairSet, objectives: list[str] | None = None) -> int:
    """Number of comparisons on which two objectives (of ``objectives``, default all) choose differently."""
    return conflict_stats(pairs, objectives)["conflicting"]


def conflict_mask(pairs: PairSet, objectives: list[str] | None = None) -> np.ndarray:
    """Per pair: True if its comparison is conflicting (pairs of objectives outside ``objectives``: False)."""
    table = comparisons(pairs, objectives)
    keep = None if objectives is None else set(objectives)
    out = np.zeros(len(pairs), dtype=bool)
    for i, (prompt, chosen, rejected, name) in enumerate(
        zip(pairs.prompts, pairs.chosen, pairs.rejected, pairs.objective)
    ):
        if keep is None or name in keep:
            votes = table[(prompt, frozenset((chosen, rejected)))]
            out[i] = len(votes) >= 2 and _is_conflict(votes)
    return out


def conflict_mixture(
    pairs: PairSet, objectives: tuple[str, str], conflict_fraction: float = 0.6, seed: int = 0
) -> PairSet:
    """SIPO's HelpSteer mixture: n = min(#conflicting, #agreeing) comparisons ranked by both objectives,
    ``round(conflict_fraction * n)`` of them conflicting and the rest agreeing (drawn with ``seed``).

    Returns both objectives' pairs for every drawn comparison; ``conflict_mask`` on the result gives
    SIPO's ``train_conflict`` part.
    """
    if len(objectives) != 2:
        raise ValueError(f"conflict_mixture takes two objectives, got {objectives!r}")
    if not 0.0 <= conflict_fraction <= 1.0:
        raise ValueError(f"conflict_fraction={conflict_fraction!r}: must lie in [0, 1]")
    table = comparisons(pairs, list(objectives))
    both = [key for key, votes in table.items() if set(objectives) <= set(votes)]
    conflicting = [key for key in both if _is_conflict(table[key])]
    agreeing = [key for key in both if not _is_conflict(table[key])]
    n = min(len(conflicting), len(agreeing))
    n_conflict = int(round(conflict_fraction * n))
    rng = np.random.default_rng(seed)
    drawn = {conflicting[i] for i in rng.permutation(len(conflicting))[:n_conflict]}
    drawn |= {agreeing[i] for i in rng.permutation(len(agreeing))[: n - n_conflict]}
    keep = [
        i for i, (p, c, r, name) in enumerate(zip(pairs.prompts, pairs.chosen, pairs.rejected, pairs.objective))
        if name in objectives and (p, frozenset((c, r))) in drawn
    ]
    return subset_pairs(pairs, keep)


def subset_pairs(pairs: PairSet, index) -> PairSet:
    """The pairs at ``index`` (int array or boolean mask), as a new set."""
    return pairs.subset(index)
