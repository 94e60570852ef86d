"""ParetoHqD configuration (the YAML ``method:`` section).

Where the paper is silent (spec section 2: [UNKNOWN]/[INF]) the default is ours and says so in
docs/methods/paretohqd.md; every such choice is a field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moalign.config import (
    ConfigError,
    GenerationSettings,
    LoraSettings,
    TrainSettings,
    check_choice,
    check_range,
)
from moalign.methods.offline_data import SCORE_SOURCES
from moalign.methods.paretohqd.select import IDEAL_NADIR_RULES

NORMALIZE = ("zscore", "none")


def _stage_train() -> TrainSettings:
    # [2ND]: 200 steps at batch 8 per preference. LoRA r/alpha and LR are [UNKNOWN]; we take RiC's
    # (r=64, alpha=128, LR 1.414e-4), the setup ParetoHqD builds on [INF].
    return TrainSettings(
        learning_rate=1.414e-4,
        max_steps=200,
        per_device_train_batch_size=8,
        lr_scheduler_type="linear",
        max_length=512,
        lora=LoraSettings(r=64, alpha=128.0, dropout=0.05),
    )


def _stage2_generation() -> GenerationSettings:
    # the representative models' sampling for the augmentation data ([UNKNOWN]; RiC's online settings)
    return GenerationSettings(max_new_tokens=128, do_sample=True, temperature=0.7, top_p=0.9, top_k=0)


@dataclass
class ParetoHqDConfig:
    """Two SFT stages per preference, each on the Pareto high-quality points nearest that preference's ray."""

    grid: str | None = None  # preferences to train; None: the run's eval.grid (the family must cover it)
    scores_from: str = "rewards"  # "rewards": score with task.rewards; "dataset": the data's own scores
    normalize: str = "zscore"  # "zscore" (statistics of the offline data, saved) | "none"
    ideal_nadir: str = "data"  # "data": per-objective max/min over all rows | "hq": over the Pareto HQ set
    ideal: list[float] | None = None  # explicit ideal point (normalised units); overrides ideal_nadir
    nadir: list[float] | None = None  # explicit nadir point (normalised units)
    num_layers: int = 3  # the top L non-dominated layers form the Pareto HQ set ([UNKNOWN])
    min_hq_size: int = 500  # ... or more layers, until the HQ set holds this many rows (0: exactly L layers)
    k: int = 100  # stage-1 points per preference
    max_per_prompt: int = 1  # at most this many selected responses per prompt and preference; 0: no limit
    train: TrainSettings = field(default_factory=_stage_train)
    # stage 2: augmentation from M+1 representative stage-1 models
    stage2: bool = True
    stage2_k: int | None = None  # None: k // 2
    stage2_prompts: int = 10000  # fresh prompts sampled from the train prompts
    stage2_num_layers: int | None = None  # None: num_layers
    stage2_train: TrainSettings | None = None  # None: the stage-1 settings
    stage2_generation: GenerationSettings = field(default_factory=_stage2_generation)

    def __post_init__(self) -> None:
        check_choice("method.scores_from", self.scores_from, SCORE_SOURCES)
        check_choice("method.normalize", self.normalize, NORMALIZE)
        check_choice("method.ideal_nadir", self.ideal_nadir, IDEAL_NADIR_RULES)
        check_range("method.num_layers", self.num_layers, low=1, integer=True, fix="the paper's L, e.g. 3")
        check_range("method.min_hq_size", self.min_hq_size, low=0, integer=True, fix="0 takes exactly num_layers")
        check_range("method.k", self.k, low=1, integer=True, fix="points per preference, e.g. 100")
        check_range("method.max_per_prompt", self.max_per_prompt, low=0, integer=True, fix="0 sets no limit")
        check_range("method.stage2_prompts", self.stage2_prompts, low=1, integer=True)
        for name in ("stage2_k", "stage2_num_layers"):
            if getattr(self, name) is not None:
                check_range(f"method.{name}", getattr(self, name), low=1, integer=True, fix="or null for the default")
        if self.stage2 and self.stage2_k is None and self.k < 2:
            raise ConfigError(f"method.k={self.k}: stage 2 takes k // 2 = 0 points per preference; raise k, set "
                              "method.stage2_k, or turn stage 2 off (method.stage2=false)")

    def check_run(self, run) -> None:
        """Rules across the run config (``moalign.checks.validate_run_config`` calls this before any stage)."""
        from moalign.eval.grid import training_grid

        try:
            training_grid(run, self.grid)
        except ValueError as err:
            raise ConfigError(f"method.grid={self.grid!r}: {err}") from None
        k = len(run.task.objectives)
        for name in ("ideal", "nadir"):
            point = getattr(self, name)
            if point is not None and (len(point) != k or not np.all(np.isfinite(point))):
                raise ConfigError(f"method.{name}={point}: give {k} finite numbers (normalised units), one per "
                                  f"objective of task.objectives={run.task.objectives}, or null")
        if self.ideal is not None and self.nadir is not None and not np.all(np.greater(self.ideal, self.nadir)):
            raise ConfigError(f"method.ideal={self.ideal} must exceed method.nadir={self.nadir} in every objective")
