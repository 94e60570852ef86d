"""pairs_from_scored against hand-computed pairs; conflict counts on hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moalign.data import PairSet, ScoredSet, conflict_mask, conflict_stats, count_conflicts, pairs_from_scored
from moalign.data.pairs import conflict_mixture, subset_pairs, winning_responses

# prompt p: three responses; prompt q: two responses with a tie on "b"; prompt r: one response (no pairs)
SCORED = ScoredSet(
    prompts=["p", "q", "p", "p", "q", "r"],
    responses=["p0", "q0", "p1", "p2", "q1", "r0"],
    scores=np.array([[1.0, 5.0], [0.0, 1.0], [3.0, 4.0], [2.0, 6.0], [1.0, 1.0], [9.0, 9.0]]),
    objectives=["a", "b"],
    ids=["i0", "i1", "i2", "i3", "i4", "i5"],
)


def _triples(pairs: PairSet) -> list[tuple[str, str, str]]:
    return list(zip(pairs.objective, pairs.chosen, pairs.rejected))


def test_all_pairs_by_hand():
    pairs = pairs_from_scored(SCORED)
    assert _triples(pairs) == [
        # objective a, prompt p: (p0,p1) 1<3, (p0,p2) 1<2, (p1,p2) 3>2; prompt q: 0<1
        ("a", "p1", "p0"), ("a", "p2", "p0"), ("a", "p1", "p2"), ("a", "q1", "q0"),
        # objective b, prompt p: 5>4, 5<6, 4<6; prompt q ties (1 = 1): dropped
        ("b", "p0", "p1"), ("b", "p2", "p0"), ("b", "p2", "p1"),
    ]
    assert pairs.ids[0] == "a:i2>i0" and pairs.prompts == ["p"] * 3 + ["q"] + ["p"] * 3
    np.testing.assert_array_equal(pairs.chosen_scores[0], [3.0, 4.0])  # full vectors of both sides
    np.testing.assert_array_equal(pairs.rejected_scores[0], [1.0, 5.0])
    assert pairs.objectives == ["a", "b"]


def test_best_worst_and_margin():
    pairs = pairs_from_scored(SCORED, mode="best_worst")
    assert _triples(pairs) == [("a", "p1", "p0"), ("a", "q1", "q0"), ("b", "p2", "p1")]
    # margin 1.5: a on p: 3-1=2 kept, q: 1-0=1 dropped; b on p: 6-4=2 kept
    assert _triples(pairs_from_scored(SCORED, mode="best_worst", min_margin=1.5)) == [
        ("a", "p1", "p0"), ("b", "p2", "p1")]
    # margin 1.0 with all pairs: only differences strictly above 1 survive
    assert _triples(pairs_from_scored(SCORED, min_margin=1.0)) == [("a", "p1", "p0"), ("b", "p2", "p1")]


def test_best_random_draws_a_beaten_response_reproducibly():
    one = pairs_from_scored(SCORED, objectives=["a"], mode="best_random", seed=3)
    assert one.chosen == ["p1", "q1"] and one.rejected[0] in ("p0", "p2") and one.rejected[1] == "q0"
    assert _triples(pairs_from_scored(SCORED, objectives=["a"], mode="best_random", seed=3)) == _triples(one)
    drawn = {pairs_from_scored(SCORED, objectives=["a"], mode="best_random", seed=s).rejected[0] for s in range(20)}
    assert drawn == {"p0", "p2"}


def test_objective_subset_and_unknown_scores():
    scores = SCORED.scores.copy()
    scores[2, 0] = math.nan  # p1 unknown on a: it joins no pair for a
    scored = ScoredSet(SCORED.prompts, SCORED.responses, scores, SCORED.objectives, SCORED.ids)
    assert _triples(pairs_from_scored(scored, objectives=["a"])) == [("a", "p2", "p0"), ("a", "q1", "q0")]


def test_bad_arguments():
    with pytest.raises(ValueError, match="did you mean 'a'"):
        pairs_from_scored(SCORED, objectives=["aa"])
    with pytest.raises(ValueError, match="mode"):
        pairs_from_scored(SCORED, mode="best")
    with pytest.raises(ValueError, match="min_margin"):
        pairs_from_scored(SCORED, min_margin=-1)


def _pairset(rows) -> PairSet:
    prompts, chosen, rejected, objective = (list(c) for c in zip(*rows))
    return PairSet(prompts=prompts, chosen=chosen, rejected=rejected, objective=objective)


def test_conflicts_by_hand():
    pairs = _pairset([
        ("p", "x", "y", "a"), ("p", "y", "x", "b"),  # conflict: a picks x, b picks y
        ("p", "x", "z", "a"), ("p", "x", "z", "b"),  # agreement
        ("q", "x", "y", "a"),                        # ranked by a only: neither
        ("q", "u", "v", "a"), ("q", "v", "u", "b"), ("q", "u", "v", "c"),  # conflict (b against a and c)
    ])
    assert count_conflicts(pairs) == 2
    assert conflict_stats(pairs) == {"ranked": 3, "conflicting": 2, "agreeing": 1}
    assert conflict_mask(pairs).tolist() == [True, True, False, False, False, True, True, True]
    # restricted to a and c, the (u, v) comparison agrees
    assert count_conflicts(pairs, objectives=["a", "c"]) == 0
    assert conflict_mask(pairs, objectives=["a", "c"]).tolist() == [False] * 8


def test_conflicts_from_scores_match_the_definition():
    pairs = pairs_from_scored(SCORED)
    # on p: (p0,p1) a->p1, b->p0 conflict; (p0,p2) both p2 agree; (p1,p2) a->p1, b->p2 conflict; q: b tied
    assert conflict_stats(pairs) == {"ranked": 3, "conflicting": 2, "agreeing": 1}


def test_conflict_mixture_takes_sipo_proportions():
    rows = []
    for i in range(6):  # 6 conflicting comparisons
        rows += [(f"c{i}", "x", "y", "a"), (f"c{i}", "y", "x", "b")]
    for i in range(4):  # 4 agreeing comparisons
        rows += [(f"n{i}", "x", "y", "a"), (f"n{i}", "x", "y", "b")]
    rows.append(("solo", "x", "y", "a"))
    mix = conflict_mixture(_pairset(rows), ("a", "b"), conflict_fraction=0.75, seed=1)
    # n = min(6, 4) = 4 comparisons: round(0.75 * 4) = 3 conflicting + 1 agreeing, two pairs each
    assert len(mix) == 8
    assert conflict_mask(mix).sum() == 6
    assert "solo" not in mix.prompts
    again = conflict_mixture(_pairset(rows), ("a", "b"), conflict_fraction=0.75, seed=1)
    assert again.prompts == mix.prompts


def test_subset_pairs_keeps_scores_aligned():
    pairs = pairs_from_scored(SCORED)
    sub = subset_pairs(pairs, np.array([1, 4]))
    assert sub.chosen == ["p2", "p0"] and sub.ids == [pairs.ids[1], pairs.ids[4]]
    np.testing.assert_array_equal(sub.chosen_scores, pairs.chosen_scores[[1, 4]])


def test_winning_responses_are_each_objectives_top_responses():
    tied = ScoredSet(["s", "s", "s"], ["s0", "s1", "s2"], np.array([[2.0, 0.0], [2.0, 1.0], [1.0, 1.0]]),
                     ["a", "b"], ["j0", "j1", "j2"])
    pairs = pairs_from_scored(ScoredSet(SCORED.prompts + tied.prompts, SCORED.responses + tied.responses,
                                        np.vstack([SCORED.scores, tied.scores]), ["a", "b"], SCORED.ids + tied.ids))
    won = winning_responses(pairs)
    assert list(won) == ["a", "b"]
    # a: p1 (3 beats 1 and 2), q1; on s a tie at the top keeps both s0 and s1; r has one response, no pair
    assert list(zip(won["a"].prompts, won["a"].responses)) == [("p", "p1"), ("q", "q1"), ("s", "s0"), ("s", "s1")]
    # b: p2 (6); q ties 1 = 1, so no pair and no winner; s: s1 and s2 tie at the top over s0
    assert list(zip(won["b"].prompts, won["b"].responses)) == [("p", "p2"), ("s", "s1"), ("s", "s2")]
    assert won["a"].ids[0] == "a:i2>i0"  # the first pair the response wins
    np.testing.assert_array_equal(won["b"].scores[0], [2.0, 6.0])  # the full score vector, run order


def test_winning_responses_of_dataset_pairs_and_an_objective_without_pairs():
    pairs = PairSet(["x", "x", "y"], ["good", "good", "fine"], ["bad", "worse", "meh"], ["h", "h", "h"])
    won = winning_responses(pairs, ["h"])
    assert won["h"].responses == ["good", "fine"]  # once per prompt, though chosen in two pairs
    assert won["h"].scores.shape == (2, 0)  # no scores known: no columns
    chain = PairSet(["x", "x"], ["mid", "top"], ["low", "mid"], ["h", "h"])
    assert winning_responses(chain)["h"].responses == ["top"]  # chosen once but also rejected: not a winner
    with pytest.raises(ValueError, match="objective 'safe' has no pairs"):
        winning_responses(pairs, ["h", "safe"])
