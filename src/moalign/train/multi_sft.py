"""MultiObjectiveSFTTrainer: supervised fine-tuning on K objectives' responses in every step.

Panacea's SFT variant trains one model on sum_k lambda_k NLL_k, NLL_k being the likelihood loss on
objective k's responses (one response per objective or style), with lambda drawn each step and written into
the model. That is the preference trainer's step (K sub-batches, a schedule, a model hook, a weighting,
checkpointed state, the linear and the gradient paths) with one row per item instead of a pair, no
reference, and a response loss ``loss_fn(logps: ResponseLogps, k, w) -> (B,)``
(:func:`moalign.train.losses.nll_loss`). So it subclasses
:class:`~moalign.train.preference.MultiObjectivePreferenceTrainer` rather than TRL's ``SFTTrainer``, which
has one dataset and one loss per step.
"""

from __future__ import annotations

import torch

from moalign.train.collate import collate_responses
from moalign.train.logps import response_logps
from moalign.train.losses import ResponseLogps
from moalign.train.preference import TOKEN_KEYS, MultiObjectivePreferenceTrainer


class MultiObjectiveSFTTrainer(MultiObjectivePreferenceTrainer):
    """The preference trainer on batches of responses alone (``build_response_dataset``); no reference model.

    Takes the same arguments as :class:`~moalign.train.preference.MultiObjectivePreferenceTrainer` except
    ``reference`` and ``ref_model``.
    """

    collate_sub_batch = staticmethod(collate_responses)
    forward_rows_per_item = 1

    def __init__(self, *args, **kwargs):
        for name in ("reference", "ref_model"):
            if name in kwargs:
                raise TypeError(f"MultiObjectiveSFTTrainer takes no {name!r}: a likelihood loss has no reference")
        super().__init__(*args, **kwargs)

    def objective_loss(self, model, batch: dict, k: int) -> tuple[torch.Tensor, dict]:
        """Mean response loss of objective k's sub-batch, and its detached NLL per token."""
        policy, tokens = response_logps(model, batch)
        columns = {n: v for n, v in batch.items() if n not in TOKEN_KEYS}
        per_row = self.loss_fn(ResponseLogps(policy, tokens, columns), k, self._w)
        weights = self.weighting.pair_weights(k)
        loss = per_row.mean() if weights is None else (per_row * weights.to(per_row)).mean()
        nll = -policy.detach().double().sum() / tokens.sum().clamp_min(1)
        return loss, {"nll_per_token": nll.item()}
