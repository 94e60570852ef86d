"""How a step combines K per-objective losses: the one thing that differs between DPO-LW, MGDA and friends.

A weighting returns **coefficients** c (K,) applied to the raw per-objective losses / gradients: the update
direction is sum_k c_k * grad L_k. Schemes that need the gradients (MGDA) get their K x K Gram matrix
<g_i, g_j>; the others get only the (detached) losses. ``weights`` (for the logs) are the simplex weights the
scheme chose; they equal the coefficients except for MGDA-Normalised, whose c_k = alpha_k / ||g_k||.

Stateful schemes (GroupDRO) expose ``state_dict``/``load_state_dict`` so that checkpoint/resume is exact.
A trainer with a preference schedule tells the weighting each step's w (``set_preference``) before any loss;
:class:`PreferenceWeights` scalarises with it (a per-pair w weights each pair inside objective k's mean).
"""

from __future__ import annotations

import numpy as np
import torch


class ObjectiveWeighting:
    """Base class: fixed behaviour for stateless schemes; subclasses override ``coefficients``."""

    needs_gradients: bool = False

    def __init__(self) -> None:
        self.weights: torch.Tensor | None = None  # simplex weights of the last call, for the logs

    def coefficients(self, losses: torch.Tensor, gram: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def fixed_coefficients(self) -> torch.Tensor | None:
        """Coefficients known before any loss is computed (lets the trainer skip zero-weight objectives)."""
        return None

    def set_preference(self, w: torch.Tensor | None) -> None:
        """The step's preference from the trainer's schedule; ignored by schemes that do not use it."""

    def pair_weights(self, k: int) -> torch.Tensor | None:
        """(B,) weights of objective k's pairs inside its mean loss; None: a plain mean."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Stateless by default: nothing to restore."""


class FixedWeights(ObjectiveWeighting):
    """Linear scalarisation with a fixed preference w (DPO-LW; uniform w = the Uniform baseline)."""

    def __init__(self, w) -> None:
        super().__init__()
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 1 or len(w) == 0 or (w < 0).any() or not np.isfinite(w).all() or abs(w.sum() - 1) > 1e-6:
            raise ValueError(f"preference w={w.tolist()}: need non-negative finite weights that sum to 1")
        self.w = torch.tensor(w, dtype=torch.float64)

    def coefficients(self, losses: torch.Tensor, gram: torch.Tensor | None = None) -> torch.Tensor:
        self.weights = self.w.clone()
        return self.w.clone()

    def fixed_coefficients(self) -> torch.Tensor:
        return self.w.clone()


class PreferenceWeights(ObjectiveWeighting):
    """Linear scalarisation by the scheduled preference (:mod:`moalign.train.schedule`).

    A per-step w (K,) gives the coefficients c = w. A per-pair w (B, K) gives c = 1 and weights pair i of
    objective k by w_ik inside L_k's mean, so the step minimises mean_i sum_k w_ik l_ik; the logged weights
    are the batch means.
    """

    def __init__(self) -> None:
        super().__init__()
        self.w: torch.Tensor | None = None

    def set_preference(self, w: torch.Tensor | None) -> None:
        if w is None:
            raise ValueError("PreferenceWeights needs a preference schedule on the trainer (schedule=...)")
        self.w = torch.as_tensor(w, dtype=torch.float64)

    def _coefficients(self) -> torch.Tensor:
        if self.w is None:
            raise ValueError("PreferenceWeights: no preference yet; the trainer sets one before each step")
        self.weights = self.w.mean(dim=0) if self.w.ndim == 2 else self.w.clone()
        return torch.ones(self.w.shape[-1], dtype=torch.float64) if self.w.ndim == 2 else self.w.clone()

    def coefficients(self, losses: torch.Tensor, gram: torch.Tensor | None = None) -> torch.Tensor:
        return self._coefficients()

    def fixed_coefficients(self) -> torch.Tensor | None:
        return None if self.w is None else self._coefficients()

    def pair_weights(self, k: int) -> torch.Tensor | None:
        return self.w[:, k] if self.w is not None and self.w.ndim == 2 else None


class TchebycheffWeights(PreferenceWeights):
    """Tchebycheff aggregation by the scheduled preference: minimise max_k w_k (L_k - z_k).

    Its (sub)gradient is w_j * grad L_j for the objective j that attains the max, so the coefficients are
    w_j on j and 0 elsewhere (ties: the first such j). ``z`` is the reference point of the losses: 0 by
    default (a DPO loss is > 0, so every term is positive and the max is the worst-served objective), or one
    value per objective; it is recorded with each checkpoint. The max is over objectives' mean losses, each on
    its own sub-batch of pairs, so a per-pair w has no meaning here and is refused.
    """

    def __init__(self, z=None) -> None:
        super().__init__()
        self.z = None if z is None else torch.as_tensor(np.asarray(z, dtype=np.float64))
        if self.z is not None and (self.z.ndim != 1 or not torch.isfinite(self.z).all()):
            raise ValueError(f"Tchebycheff z={np.asarray(z).tolist()}: give one finite number per objective")

    def set_preference(self, w: torch.Tensor | None) -> None:
        super().set_preference(w)
        if self.w.ndim == 2:
            raise ValueError("Tchebycheff aggregation takes one w per step (the max is over the objectives' "
                             "mean losses); set schedule.per_sample=false, or use linear scalarisation")

    def fixed_coefficients(self) -> torch.Tensor | None:
        return None  # the coefficients depend on this step's losses

    def coefficients(self, losses: torch.Tensor, gram: torch.Tensor | None = None) -> torch.Tensor:
        w = self._coefficients()
        z = torch.zeros_like(w) if self.z is None else self.z
        if len(z) != len(w):
            raise ValueError(f"Tchebycheff z has {len(z)} entries for {len(w)} objectives; give one per objective")
        worst = int(torch.argmax(w * (losses.to(torch.float64) - z)))
        coef = torch.zeros_like(w)
        coef[worst] = w[worst]
        return coef

    def state_dict(self) -> dict:
        return {"z": None if self.z is None else self.z.tolist()}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("z")
        if saved != (None if self.z is None else self.z.tolist()):
            raise ValueError(f"the checkpoint was trained with Tchebycheff z={saved}, this trainer has "
                             f"{None if self.z is None else self.z.tolist()}; resume with the same z")
