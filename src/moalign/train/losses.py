"""Pure preference losses on summed log-probabilities (no model, no trainer: easy to check by hand).

Every function takes the policy's and the reference's summed response log-probs of the chosen and the
rejected response, shape (B,), and returns per-pair values, shape (B,). The trainer averages over pairs.

The trainer calls a method's loss as ``loss_fn(logps: PairLogps, k: int, w) -> (B,)``: ``k`` indexes the
objective whose sub-batch this is, ``w`` is the step's preference from the trainer's schedule (a float64
CPU tensor, (K,) or (B, K) per pair; None when the trainer has no schedule). A loss that does not depend on
the preference ignores ``w``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class PairLogps:
    """Log-probs of one objective's sub-batch, plus its per-pair float columns (e.g. MODPO margins).

    ``chosen_tokens`` / ``rejected_tokens`` (B,) count the response tokens each sum runs over (the same
    tokens for the policy and the reference).
    """

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    columns: dict = field(default_factory=dict)
    chosen_tokens: torch.Tensor | None = None
    rejected_tokens: torch.Tensor | None = None

    def logit_gap(self) -> torch.Tensor:
        """(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)): the DPO log-ratio difference."""
        return (self.policy_chosen - self.ref_chosen) - (self.policy_rejected - self.ref_rejected)

    def policy_token_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean log-prob per response token of the chosen and the rejected response (length-normalised).

        >>> t = torch.tensor
        >>> PairLogps(t([-6.0]), t([-2.0]), t([0.0]), t([0.0]), chosen_tokens=t([3]), rejected_tokens=t([4])).policy_token_means()
        (tensor([-2.]), tensor([-0.5000]))
        """
        if self.chosen_tokens is None or self.rejected_tokens is None:
            raise ValueError("PairLogps has no token counts; build it from moalign.train.logps.pair_logps")
        chosen = self.policy_chosen / self.chosen_tokens.clamp_min(1).to(self.policy_chosen.dtype)
        rejected = self.policy_rejected / self.rejected_tokens.clamp_min(1).to(self.policy_rejected.dtype)
        return chosen, rejected


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-pair DPO loss -log sigmoid(beta * [(log pi_w - log ref_w) - (log pi_l - log ref_l)]).

    >>> t = torch.tensor
    >>> round(float(dpo_loss(t([-1.0]), t([-2.0]), t([-1.5]), t([-1.5]), beta=0.5)[0]), 6)  # -log sigmoid(0.5)
    0.474077
    """
    if beta <= 0:
        raise ValueError(f"beta={beta}: the DPO temperature must be > 0")
    gap = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * gap)


def dpo_pair_loss(beta: float):
    """The DPO loss as the trainer's ``loss_fn(logps, k, w) -> (B,)`` (same beta for every objective; the
    preference ``w`` weights objectives through the trainer's weighting, not inside the loss)."""
    if beta <= 0:
        raise ValueError(f"beta={beta}: the DPO temperature must be > 0")

    def loss_fn(logps: PairLogps, k: int, w=None) -> torch.Tensor:
        return dpo_loss(logps.policy_chosen, logps.policy_rejected, logps.ref_chosen, logps.ref_rejected, beta)

    return loss_fn
