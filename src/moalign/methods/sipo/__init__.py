"""SIPO (Li, Zhang et al., ACL Findings 2025): self-improving DPO on self-generated Pareto-optimal responses.

Building blocks only so far (issue 10): the Pareto filter over implicit-reward score tables and the new pairs
(:mod:`moalign.methods.sipo.select`), and the re-alignment loss DPO + alpha * NLL
(:func:`moalign.train.losses.dpo_nll_pair_loss`). The pipeline (experts, MOD sampling on conflicting pairs,
review/rewrite, filter, re-alignment, rounds) and its registry entry are next; see docs/methods/sipo.md.
"""

from moalign.methods.sipo.select import pareto_survivor, survivor_pairs

__all__ = ["pareto_survivor", "survivor_pairs"]
