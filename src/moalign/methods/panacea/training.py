"""Panacea's training step pieces: the loss of each objective (DPO or NLL, by variant), its aggregation, and
the SFT variant's data."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from moalign.data.pairs import winning_responses
from moalign.data.schema import PairSet, ScoredSet
from moalign.methods.panacea.config import PanaceaConfig
from moalign.train.losses import dpo_pair_loss, nll_loss
from moalign.train.weighting import PreferenceWeights, TchebycheffWeights


def aggregation_weighting(method: PanaceaConfig) -> PreferenceWeights:
    """sum_k lambda_k L_k (``ls``) or max_k lambda_k (L_k - z_k) (``tche``)."""
    return TchebycheffWeights(method.tche_z) if method.aggregation == "tche" else PreferenceWeights()


def objective_loss_fn(method: PanaceaConfig) -> Callable:
    """L_k per pair (``dpo``: DPO at ``beta``) or per response (``sft``: NLL); the trainer's ``loss_fn``."""
    return nll_loss(method.nll_normalisation) if method.variant == "sft" else dpo_pair_loss(method.beta)


def sft_responses(pairs: PairSet, objectives: Sequence[str]) -> dict[str, ScoredSet]:
    """The SFT variant's data: per objective, the responses it ranks top for each prompt (from scores: the
    best response, ties at the top all kept; from a dataset's pairs: the chosen one)."""
    return winning_responses(pairs, list(objectives))
