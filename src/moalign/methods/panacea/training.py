"""Panacea's training step pieces: the model hook that embeds lambda, and the weighting of the K DPO losses."""

from __future__ import annotations

import torch

from moalign.methods.panacea.config import PanaceaConfig
from moalign.models.svd_lora import set_preference
from moalign.train.weighting import PreferenceWeights, TchebycheffWeights


def embed_preference(model, w: torch.Tensor) -> None:
    """The trainer's ``model_hook``: write the step's lambda into every SVD-LoRA layer before the forward.

    A per-pair lambda (B, K) is written for both halves of the concatenated forward (the B chosen rows, then
    the B rejected rows: :func:`moalign.train.logps.pair_logps`), so each pair's two responses share it.
    """
    set_preference(model, torch.cat([w, w]) if w.ndim == 2 else w)


def aggregation_weighting(method: PanaceaConfig) -> PreferenceWeights:
    """sum_k lambda_k L_k (``ls``) or max_k lambda_k (L_k - z_k) (``tche``)."""
    return TchebycheffWeights(method.tche_z) if method.aggregation == "tche" else PreferenceWeights()
