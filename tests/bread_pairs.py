"""Two objectives' worth of tiny preference pairs (and their chosen responses alone, for the SFT trainer),
shared by the preference-trainer tests."""

from __future__ import annotations

import numpy as np

from moalign.data.schema import PairSet, ScoredSet


def pairset(objective: str, n: int, offset: int = 0) -> PairSet:
    """n pairs for ``objective``: a friendly answer chosen over a curt or rude one (prompts numbered from offset)."""
    prompts = [f"\n\nHuman: Question {i + offset} about bread?\n\nAssistant:" for i in range(n)]
    chosen = ["A lovely, helpful answer." if i % 2 else "Great, happy to help!" for i in range(n)]
    rejected = ["No." if i % 3 else "Go away, that is a dull question." for i in range(n)]
    return PairSet(prompts, chosen, rejected, [objective] * n)


PAIRS = {"helpful": pairset("helpful", 8), "brief": pairset("brief", 6, offset=20)}


def chosen_responses(pairs: PairSet) -> ScoredSet:
    """The pairs' chosen side as SFT rows (no scores)."""
    return ScoredSet(list(pairs.prompts), list(pairs.chosen), np.zeros((len(pairs), 0)), [])


RESPONSES = {name: chosen_responses(pairs) for name, pairs in PAIRS.items()}
