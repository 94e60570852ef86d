"""MGDA-Decoupled (Vari-Kakas, Park, Tagasovska 2026) and its baselines as one method with a ``mode``.

One model for all objectives (no preference input): each step computes a DPO loss L_k on objective k's own
pairs, combines the K gradients with the mode's weights (:mod:`.weighting`) and takes one optimiser step.
The family is the single trained model (its front is one point); compare modes by running the method once
per mode, with the same seed, pairs and settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moalign.config import ConfigError, RunConfig, TrainSettings
from moalign.eval.family import SharedModelFamily
from moalign.methods.mgda.weighting import GRADIENT_MODES, MODES, MGDAWeighting, check_mode
from moalign.methods.preference_data import (
    PairSettings,
    cached_reference,
    check_dpo_settings,
    load_pairsets,
    pairs_stage,
    reference_columns,
)
from moalign.methods.stages import training_stage
from moalign.pipeline import Run
from moalign.train.losses import dpo_pair_loss


@dataclass
class MGDAConfig:
    """MGDA family settings (paper: beta 0.5, lr 5e-7, full fine-tuning, one epoch)."""

    mode: str = "decoupled"  # decoupled | vanilla | normalised | uniform | groupdro
    beta: float = 0.5
    reference: str = "precomputed"  # precomputed | model | adapter (LoRA only)
    grad_layers: int = 0  # 0: gradients of all trainable parameters; n: only the last n decoder layers
    # None: per-objective gradients only where the mode needs them; True: uniform/groupdro take the same
    # gradient path as MGDA (for like-for-like timing); False: error for a gradient mode
    per_objective_gradients: bool | None = None
    groupdro_eta: float = 0.01  # GroupDRO's exponentiated-gradient step [UNKNOWN in the paper]
    loss_eps: float = 1e-8  # decoupled: L_k is clamped to at least this before dividing
    pairs: PairSettings = field(default_factory=PairSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        check_dpo_settings(self.beta, self.reference)
        if self.mode not in MODES:
            raise ConfigError(f"method.mode={self.mode!r}: choose one of {', '.join(MODES)}")
        if isinstance(self.grad_layers, bool) or not isinstance(self.grad_layers, int) or self.grad_layers < 0:
            raise ConfigError(f"method.grad_layers={self.grad_layers!r}: 0 (every trainable parameter) or the "
                              "number n > 0 of last decoder layers whose gradients feed the weights")
        if self.mode == "groupdro" and not self.groupdro_eta > 0:
            raise ConfigError(f"method.groupdro_eta={self.groupdro_eta!r}: GroupDRO's step must be > 0, e.g. 0.01")
        if not self.loss_eps > 0:
            raise ConfigError(f"method.loss_eps={self.loss_eps!r}: must be > 0 (it bounds 1/L_k), e.g. 1e-8")
        if self.mode in GRADIENT_MODES and self.per_objective_gradients is False:
            raise ConfigError(f"method.per_objective_gradients=false but method.mode={self.mode!r} needs them; "
                              "leave it unset (null)")


def build_weighting(method: MGDAConfig, num_objectives: int) -> MGDAWeighting:
    weighting = MGDAWeighting(check_mode(method.mode), num_objectives, method.groupdro_eta, method.loss_eps)
    if weighting.needs_gradients and method.per_objective_gradients is False:
        raise ValueError(f"method.mode={method.mode!r} needs per-objective gradients; unset per_objective_gradients")
    return weighting


def train_mgda(config: RunConfig, run: Run) -> SharedModelFamily:
    """Stages: pairs -> train/<mode>; returns the one trained model as a family."""
    from moalign.train.preference_run import train_preference

    method, objectives = config.method, list(config.task.objectives)
    build_weighting(method, len(objectives))  # fail on a bad mode before any work
    pairs_dir = pairs_stage(config, run, method.pairs)
    ref_stage = cached_reference(config, run, method.reference, method.train.max_length)

    def train(ckpt_dir, out_dir):
        train_preference(
            config.model, load_pairsets(pairs_dir, objectives), save_dir=out_dir, checkpoint_dir=ckpt_dir,
            loss_fn=dpo_pair_loss(method.beta), weighting=build_weighting(method, len(objectives)),
            settings=method.train, seed=config.seed, reference=method.reference,
            columns=reference_columns(run, ref_stage, objectives), grad_layers=method.grad_layers,
            per_objective_gradients=method.per_objective_gradients,
        )

    inputs = {"model": config.model, "method": {k: v for k, v in vars(method).items() if k != "pairs"},
              "seed": config.seed}
    folder = training_stage(run, f"train/{method.mode}", inputs, train, ["pairs"] + ([ref_stage] if ref_stage else []))
    return SharedModelFamily(f"mgda-{method.mode}", folder)
