"""SIPO (Li, Zhang et al., ACL Findings 2025): self-improving DPO on self-generated Pareto-optimal responses.

Per-objective DPO experts write MOD responses to the prompts whose pairs the objectives decide differently;
a response that beats both sides of its pair under every reward model survives the Pareto filter
(:mod:`~moalign.methods.sipo.select`) and becomes the chosen response of new pairs; each expert is then
re-aligned on them with DPO + alpha * NLL. The stages are in :mod:`~moalign.methods.sipo.pipeline`, the
settings in :mod:`~moalign.methods.sipo.config`; see docs/methods/sipo.md.
"""

from moalign.methods.registry import MethodSpec
from moalign.methods.sipo.config import RealignSettings, ReviewSettings, SIPOConfig
from moalign.methods.sipo.pipeline import train_sipo
from moalign.methods.sipo.select import pareto_survivor, survivor_pairs

METHOD = MethodSpec("sipo", SIPOConfig, train_sipo,
                    "self-improving DPO: MOD candidates on conflicting pairs, Pareto-filtered, re-aligned experts")

__all__ = ["METHOD", "RealignSettings", "ReviewSettings", "SIPOConfig", "pareto_survivor", "survivor_pairs",
           "train_sipo"]
