"""Panacea (Zhong et al., NeurIPS 2024): one SVD-LoRA model for the whole Pareto front, the preference vector
written into its singular values (:mod:`moalign.models.svd_lora`); DPO and SFT variants with linear or
Tchebycheff aggregation. See docs/methods/panacea.md."""

from moalign.methods.panacea.config import PanaceaConfig
from moalign.methods.panacea.family import PanaceaFamily, family_from_description
from moalign.methods.panacea.method import schedule_of, stage_name, train_panacea
from moalign.methods.panacea.training import aggregation_weighting, objective_loss_fn, sft_responses
from moalign.methods.registry import MethodSpec

METHOD = MethodSpec("panacea", PanaceaConfig, train_panacea,
                    "one SVD-LoRA model for the whole front; the preference is its singular values (DPO or SFT; LS/Tche)")

__all__ = ["METHOD", "PanaceaConfig", "PanaceaFamily", "aggregation_weighting", "family_from_description",
           "objective_loss_fn", "schedule_of", "sft_responses", "stage_name", "train_panacea"]
