"""The soups' settings: how the experts are trained (a DPO config, the ``dpo`` method's own) and how they mix."""

from __future__ import annotations

from dataclasses import dataclass, field

from moalign.config import ConfigError, check_choice
from moalign.methods.dpo_lw import DPOConfig
from moalign.methods.morlhf import MORLHFConfig
from moalign.models.soups import MODES

ADAPTER_MODES = ("lora_factors", "merged_delta")


def check_mode(mode: str, lora_r: int) -> None:
    """ConfigError for an unknown mode, or an adapter mode over full fine-tuned experts."""
    check_choice("method.mode", mode, MODES)
    if mode in ADAPTER_MODES and lora_r == 0:
        raise ConfigError(f"method.mode={mode!r} interpolates LoRA factors, but method.experts.train.lora.r=0 "
                          "trains full models: set method.experts.train.lora.r > 0 (e.g. 8), or use "
                          "method.mode=full_weights")


@dataclass
class SoupsConfig:
    """DPO Soups: ``experts`` trains one DPO model per objective (stages ``train/w=1.00,0.00``, ... exactly as
    ``moalign train dpo``); ``mode`` is how they are interpolated per preference w (docs/methods/soups.md):
    ``lora_factors`` (A and B each interpolated, the official RS/SIPO soups), ``merged_delta`` (the exact
    weighted sum of the LoRA updates) or ``full_weights`` (every weight; full or merged LoRA experts)."""

    experts: DPOConfig = field(default_factory=DPOConfig)
    mode: str = "lora_factors"

    def __post_init__(self) -> None:
        check_mode(self.mode, self.experts.train.lora.r)

    def check_run(self, run) -> None:
        """One expert per task objective: the soup's w has the task's K entries."""
        objectives = list(run.task.objectives)
        chosen = self.experts.objectives
        if chosen is not None and sorted(chosen) != sorted(objectives):
            raise ConfigError(f"method.experts.objectives={chosen}: a soup needs one expert per task objective "
                              f"({objectives}); set it to null")


@dataclass
class RewardedSoupsConfig:
    """Rewarded Soups (Ramé et al., NeurIPS 2023): ``experts`` trains one MORLHF (GRPO) model per objective at
    w = e_k (stages ``train/w=1.00,0.00``, ... exactly as ``moalign train morlhf`` with one-hot preferences;
    its ``preferences`` field is set by the soup); ``mode`` as for DPO Soups."""

    experts: MORLHFConfig = field(default_factory=MORLHFConfig)
    mode: str = "full_weights"  # the embedded experts are full fine-tuned; lora_factors with LoRA experts (RS)

    def __post_init__(self) -> None:
        check_mode(self.mode, self.experts.train.lora.r)
        if self.experts.preferences is not None:
            raise ConfigError(f"method.experts.preferences={self.experts.preferences!r}: Rewarded Soups trains one "
                              "expert per objective (w = e_k); leave it null")
