"""Evaluation: sweep a policy family over a preference grid, score, measure the front, judge, report.

One idea per module (imported lazily by whoever needs them, so ``import moalign.eval.family`` stays light):

* ``family``: the policy-family interface methods implement, and ``save_family`` / ``load_family``
* ``generate``: seeded batched sampling
* ``inputs``: the fixed test prompts and the train-set z-score statistics (stages)
* ``sweep``: one generation stage per preference; ``score``: per-prompt rows and one point per preference
* ``metrics``: hypervolume (raw, z-scored), IGD, spacing, sparsity, controllability, inner product; degenerate
  points (mostly collapsed responses) left out of them
* ``judge``: win rate against golden responses (position swap, ties, net win rate)
* ``harness``: ``evaluate(config, family, run)`` and ``moalign eval``
* ``report`` / ``html``: ``moalign report`` (PNG, Markdown/JSON table, self-contained HTML page)
"""
