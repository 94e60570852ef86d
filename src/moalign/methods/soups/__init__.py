"""Weight soups (DPO Soups over DPO experts, Rewarded Soups over MORLHF experts): one expert per objective on a
shared base, interpolated per preference w into one in-memory model (:mod:`moalign.models.soups`). See
docs/methods/soups.md."""

from moalign.methods.registry import MethodSpec
from moalign.methods.soups.config import RewardedSoupsConfig, SoupsConfig
from moalign.methods.soups.family import SoupFamily, family_from_description
from moalign.methods.soups.method import expert_folders, train_rewarded_soups, train_soups

METHODS = {
    "soups": MethodSpec("soups", SoupsConfig, train_soups,
                        "DPO Soups: one DPO expert per objective, their weights interpolated per preference "
                        "(lora_factors | merged_delta | full_weights)"),
    "rewarded_soups": MethodSpec("rewarded_soups", RewardedSoupsConfig, train_rewarded_soups,
                                 "Rewarded Soups: one MORLHF (GRPO) expert per objective, interpolated per preference"),
}
METHOD = METHODS["soups"]

__all__ = ["METHOD", "METHODS", "RewardedSoupsConfig", "SoupFamily", "SoupsConfig", "expert_folders",
           "family_from_description", "train_rewarded_soups", "train_soups"]
