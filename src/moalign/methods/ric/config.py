"""Rewards-in-Context configuration (the YAML ``method:`` section). Defaults are the released code's
(spec section 1, [CODE]/[README]); the embedded config shrinks the steps and sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from moalign.config import ConfigError, GenerationSettings, LoraSettings, TrainSettings
from moalign.methods.offline_data import SCORE_SOURCES
from moalign.methods.ric.conditioning import MAPPINGS, PROMPT_STYLES

TARGET_RANGES = ("gaussian", "data")


def _offline_train() -> TrainSettings:
    # RiC: LoRA r=64, alpha=128, dropout 0.05; LR 1.414e-4, linear decay, no warmup, wd 0.01; 20,000 steps;
    # batch 2 per device x 4 GPUs (here: 8 on one device).
    return TrainSettings(
        learning_rate=1.414e-4,
        max_steps=20000,
        per_device_train_batch_size=8,
        lr_scheduler_type="linear",
        weight_decay=0.01,
        max_length=512,
        lora=LoraSettings(r=64, alpha=128.0, dropout=0.05),
    )


def _online_train() -> TrainSettings:
    # RiC online stage: the same LoRA, LR 1e-5 constant, 4,000 steps per iteration.
    return TrainSettings(
        learning_rate=1e-5,
        max_steps=4000,
        per_device_train_batch_size=8,
        lr_scheduler_type="constant",
        weight_decay=0.01,
        max_length=512,
        lora=LoraSettings(r=64, alpha=128.0, dropout=0.05),
    )


def _online_generation() -> GenerationSettings:
    # RiC's online sampling: temperature 0.7, top-p 0.9, top-k off, 128 new tokens, first token not EOS.
    return GenerationSettings(max_new_tokens=128, do_sample=True, temperature=0.7, top_p=0.9, top_k=0)


@dataclass
class OnlineSettings:
    """Multi-objective rejection sampling (MORS), repeated ``iterations`` times (0: offline only)."""

    iterations: int = 2
    num_prompts: int = 20000  # prompts drawn with replacement from the train prompts, per iteration
    quantile: float = 0.7  # keep a sample if ANY objective >= its quantile among the generated samples
    offline_mix: int = 10000  # offline samples (passing the same filter) mixed in, per iteration
    target_draws: int = 100000  # MORS goal range: min/max of this many N(0,1) draws, rounded to 0.1
    generation: GenerationSettings = field(default_factory=_online_generation)
    train: TrainSettings = field(default_factory=_online_train)
    seed: int = 8888  # iteration i uses seed + i (RiC)

    def __post_init__(self) -> None:
        _check_int("online.iterations", self.iterations, 0, "0 trains offline only")
        _check_int("online.num_prompts", self.num_prompts, 1, "prompts generated per iteration")
        _check_int("online.offline_mix", self.offline_mix, 0, "0 mixes in no offline sample")
        _check_int("online.target_draws", self.target_draws, 2, "RiC draws 100000")
        _check_int("online.seed", self.seed, 0, "RiC uses 8888")
        q = self.quantile
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ConfigError(f"method.online.quantile={self.quantile!r}: give a number in [0, 1] (RiC uses 0.7)")


@dataclass
class RicConfig:
    """One conditional model for all preferences; targets written into the prompt."""

    assistant_tag: str = "\n\nAssistant:"  # the reward tokens go right before it
    prompt_style: str = "official"  # "official" (RiC's strings byte for byte) | "clean" | "rstrip"; see the docs
    add_score_tokens: bool = False  # False: "<rm1_score>" is plain text, as in RiC; True: new vocabulary rows
    scores_from: str = "rewards"  # "rewards": score with task.rewards; "dataset": use the data's own scores
    train: TrainSettings = field(default_factory=_offline_train)
    online: OnlineSettings = field(default_factory=OnlineSettings)
    # inference: preference -> targets
    mapping: str = "l2"  # "linf" | "l2" | "linear"; the released evaluation calls l2
    target_range: str = "gaussian"  # "gaussian": min/max of reference_draws N(0,1) draws; "data": train z range
    reference_draws: int = 50000  # per objective: each objective's own N(0,1) sample, unrounded min/max (RiC)
    reference_seed: int = 8888

    def __post_init__(self) -> None:
        if not isinstance(self.assistant_tag, str) or not self.assistant_tag.strip():
            raise ConfigError(f"method.assistant_tag={self.assistant_tag!r}: give the prompt template's assistant "
                              "tag, e.g. '\\n\\nAssistant:' (HH) or '### Response:' (summary)")
        _check_choice("prompt_style", self.prompt_style, PROMPT_STYLES)
        _check_choice("scores_from", self.scores_from, SCORE_SOURCES)
        _check_choice("mapping", self.mapping, MAPPINGS)
        _check_choice("target_range", self.target_range, TARGET_RANGES)
        if not isinstance(self.add_score_tokens, bool):
            raise ConfigError(f"method.add_score_tokens={self.add_score_tokens!r}: give true or false")
        _check_int("reference_draws", self.reference_draws, 2, "RiC draws 50000 per objective")
        _check_int("reference_seed", self.reference_seed, 0, "RiC uses 8888")
        if self.reference_seed >= 2**32:
            raise ConfigError(f"method.reference_seed={self.reference_seed}: numpy's legacy generator takes seeds "
                              "below 2**32; RiC uses 8888")


def _check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"method.{name}={value!r} is not known: choose one of {', '.join(choices)}")


def _check_int(name: str, value, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"method.{name}={value!r}: give a whole number >= {minimum} ({hint})")
