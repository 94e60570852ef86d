"""Pure preference losses on summed log-probabilities (no model, no trainer: easy to check by hand).

Every function takes the policy's and the reference's summed response log-probs of the chosen and the
rejected response, shape (B,), and returns per-pair values, shape (B,). The trainer averages over pairs.

The trainer calls a method's loss as ``loss_fn(logps: PairLogps, k: int, w) -> (B,)``: ``k`` indexes the
objective whose sub-batch this is, ``w`` is the step's preference from the trainer's schedule (a float64
CPU tensor, (K,) or (B, K) per pair; None when the trainer has no schedule). A loss that does not depend on
the preference ignores ``w``. Responses alone (SFT rows, Panacea's SFT variant) come as
:class:`ResponseLogps` to a ``loss_fn(logps: ResponseLogps, k, w) -> (B,)`` such as :func:`nll_loss`.
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
    sequence_width: int | None = None  # the padded width of the sub-batch's rows (prompt + response)

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


@dataclass
class ResponseLogps:
    """Summed log-probs (B,) of one objective's B responses (SFT rows), their token counts and float columns."""

    policy: torch.Tensor
    tokens: torch.Tensor
    columns: dict = field(default_factory=dict)


NLL_NORMALISATIONS = ("token", "sequence")


def nll_loss(normalisation: str = "token"):
    """Negative log-likelihood of the responses as the trainer's ``loss_fn(logps: ResponseLogps, k, w) -> (B,)``.

    ``"token"``: the sub-batch's mean over tokens (TRL's SFT loss: every token counts once, long responses
    weigh more); the per-row values are -log p(y_i) / mean_i(tokens_i), so their mean is
    sum_i -log p(y_i) / sum_i tokens_i. ``"sequence"``: -log p(y_i) / tokens_i, each response's own mean.

    >>> t = torch.tensor
    >>> logps = ResponseLogps(t([-6.0, -1.0]), t([3, 1]))
    >>> float(nll_loss()(logps, 0).mean()), nll_loss("sequence")(logps, 0).tolist()  # 7 / 4; 6 / 3, 1 / 1
    (1.75, [2.0, 1.0])
    """
    if normalisation not in NLL_NORMALISATIONS:
        raise ValueError(f"normalisation={normalisation!r}: choose one of {', '.join(NLL_NORMALISATIONS)}")

    def loss_fn(logps: ResponseLogps, k: int, w=None) -> torch.Tensor:
        tokens = logps.tokens.clamp_min(1).to(logps.policy.dtype)
        return -logps.policy / (tokens if normalisation == "sequence" else tokens.mean())

    return loss_fn


NLL_LENGTHS = ("response", "padded_batch")


def dpo_nll_pair_loss(beta: float, alpha: float = 0.1, length: str = "response"):
    """SIPO's re-alignment loss as the trainer's ``loss_fn``: DPO plus ``alpha`` times the chosen response's
    NLL divided by a length, -log sigmoid(beta * gap) - alpha * log pi(y_w) / n.

    ``length``: ``"response"`` (ours): n = |y_w|, the chosen response's own tokens; ``"padded_batch"`` (the
    official trainer's quirk: it counts ``input_ids != -100``, which is every position of the padded
    concatenated batch): n = the sub-batch's padded width, prompt and padding included, the same for every
    row. ``alpha = 0`` is exactly :func:`dpo_pair_loss`.

    >>> t = torch.tensor
    >>> logps = PairLogps(t([-6.0]), t([-2.0]), t([-6.0]), t([-2.0]), chosen_tokens=t([3]), rejected_tokens=t([1]),
    ...                   sequence_width=12)
    >>> round(float(dpo_nll_pair_loss(0.5, alpha=0.1)(logps, 0)[0]), 6)  # log 2 + 0.1 * 6 / 3
    0.893147
    >>> round(float(dpo_nll_pair_loss(0.5, alpha=0.1, length="padded_batch")(logps, 0)[0]), 6)  # log 2 + 0.1 * 6 / 12
    0.743147
    """
    if not (alpha >= 0 and alpha == alpha):
        raise ValueError(f"alpha={alpha}: the NLL weight must be >= 0 (0 is plain DPO)")
    if length not in NLL_LENGTHS:
        raise ValueError(f"length={length!r}: choose one of {', '.join(NLL_LENGTHS)}")
    dpo = dpo_pair_loss(beta)

    def loss_fn(logps: PairLogps, k: int, w=None) -> torch.Tensor:
        if length == "response":
            chosen_mean, _ = logps.policy_token_means()
        elif logps.sequence_width is None:
            raise ValueError("length='padded_batch' needs PairLogps.sequence_width (set by the preference trainer)")
        else:
            chosen_mean = logps.policy_chosen / logps.sequence_width
        return dpo(logps, k, w) - alpha * chosen_mean

    return loss_fn
