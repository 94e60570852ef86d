"""Weight soups (DPO Soups; Rewarded Soups once RL experts exist): one expert per objective on a shared base,
interpolated per preference w into one in-memory model (:mod:`moalign.models.soups`). See docs/methods/soups.md."""

from moalign.methods.registry import MethodSpec
from moalign.methods.soups.config import SoupsConfig
from moalign.methods.soups.family import SoupFamily, family_from_description
from moalign.methods.soups.method import expert_folders, train_soups

METHOD = MethodSpec("soups", SoupsConfig, train_soups,
                    "DPO Soups: one DPO expert per objective, their weights interpolated per preference "
                    "(lora_factors | merged_delta | full_weights)")

__all__ = ["METHOD", "SoupFamily", "SoupsConfig", "expert_folders", "family_from_description", "train_soups"]
