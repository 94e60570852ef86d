"""The soups' settings: how the experts are trained (a DPO config, the ``dpo`` method's own) and how they mix."""

from __future__ import annotations

from dataclasses import dataclass, field

from moalign.config import ConfigError, check_choice
from moalign.methods.dpo_lw import DPOConfig
from moalign.models.soups import MODES

ADAPTER_MODES = ("lora_factors", "merged_delta")


@dataclass
class SoupsConfig:
    """DPO Soups: ``experts`` trains one DPO model per objective (stages ``train/w=1.00,0.00``, ... exactly as
    ``moalign train dpo``); ``mode`` is how they are interpolated per preference w (docs/methods/soups.md):
    ``lora_factors`` (A and B each interpolated, the official RS/SIPO soups), ``merged_delta`` (the exact
    weighted sum of the LoRA updates) or ``full_weights`` (every weight; full or merged LoRA experts)."""

    experts: DPOConfig = field(default_factory=DPOConfig)
    mode: str = "lora_factors"

    def __post_init__(self) -> None:
        check_choice("method.mode", self.mode, MODES)
        if self.mode in ADAPTER_MODES and self.experts.train.lora.r == 0:
            raise ConfigError(f"method.mode={self.mode!r} interpolates LoRA factors, but method.experts.train.lora.r=0 "
                              "trains full models: set method.experts.train.lora.r > 0 (e.g. 8), or use "
                              "method.mode=full_weights")

    def check_run(self, run) -> None:
        """One expert per task objective: the soup's w has the task's K entries."""
        objectives = list(run.task.objectives)
        chosen = self.experts.objectives
        if chosen is not None and sorted(chosen) != sorted(objectives):
            raise ConfigError(f"method.experts.objectives={chosen}: a soup needs one expert per task objective "
                              f"({objectives}); set it to null")
