"""SIPO's settings: the first-round experts, the MOD sampler, the optional review/rewrite, the scorer and the
re-alignment, with every default that is ours marked (docs/methods/sipo.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from moalign.config import (
    ConfigError,
    GenerationSettings,
    LoraSettings,
    TrainSettings,
    check_choice,
    check_range,
)
from moalign.methods.dpo_lw import DPOConfig
from moalign.methods.mod import MODDecoding
from moalign.train.losses import NLL_LENGTHS

SCORERS = ("implicit", "explicit")

# Our own wording of the official one-shot templates (scripts/SIPO/review.py, rewrite.py): the shape (one
# worked example, then the live case, the answer cut at the next "Question:") is theirs, the text is not.
REVIEW_TEMPLATE = (
    "Question: How can I keep basil fresh?\n"
    "Response: Put it in the fridge.\n"
    "Give three suggestions that would make the response {goal}.\n"
    "Suggestions: 1. Say to keep the stems in water like cut flowers. 2. Warn that cold blackens the leaves. "
    "3. Keep it short.\n\n"
    "Question: {prompt}\n"
    "Response: {response}\n"
    "Give three suggestions that would make the response {goal}.\n"
    "Suggestions:"
)
REWRITE_TEMPLATE = (
    "Question: How can I keep basil fresh?\n"
    "Response: Put it in the fridge.\n"
    "Review: 1. Keep the stems in water. 2. Cold blackens the leaves. 3. Keep it short.\n"
    "Revise the response based on the review to make it {goal}.\n"
    "Revised response: Stand the stems in a glass of water on the counter, out of the fridge.\n\n"
    "Question: {prompt}\n"
    "Response: {response}\n"
    "Review: {review}\n"
    "Revise the response based on the review to make it {goal}.\n"
    "Revised response:"
)


def _greedy(max_new_tokens: int) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=max_new_tokens, do_sample=False, stop_strings=["Question:"])


@dataclass
class ReviewSettings:
    """The optional review and rewrite (official: HelpSteer only). ``objective``: whose expert writes the
    review (official: correctness); None turns the step off (official for BeaverTails). The rewrite is decoded
    by MOD at the candidate's own w. ``goal`` fills ``{goal}`` in both templates (official: "more correct and
    verbose"; ours: the objectives' names). Both answers are cut at the generation's stop strings (official:
    the next "Question:")."""

    objective: str | None = None
    goal: str | None = None  # None: "better in <objective 1> and <objective 2>"
    review_template: str = REVIEW_TEMPLATE  # fields {prompt} {response} {goal}
    rewrite_template: str = REWRITE_TEMPLATE  # fields {prompt} {response} {review} {goal}
    review_generation: GenerationSettings = field(default_factory=lambda: _greedy(64))
    rewrite_generation: GenerationSettings = field(default_factory=lambda: _greedy(64))

    def __post_init__(self) -> None:
        for name, template, fields in (("review_template", self.review_template, ("{prompt}", "{response}")),
                                       ("rewrite_template", self.rewrite_template,
                                        ("{prompt}", "{response}", "{review}"))):
            missing = [f for f in fields if f not in template]
            if missing:
                raise ConfigError(f"method.review.{name} lacks {missing}: the template must place the live "
                                  f"question and answer (fields {list(fields)}, optional {{goal}})")


def _realign_train() -> TrainSettings:
    # official: lr 5e-6, 1/100 of the first round's 5e-4 (LoRA r 64 on a 7B merged model); the shape here is
    # the embedded task's (LoRA r 8, 30 steps) at the same 1/100 of its experts' 2e-3
    return TrainSettings(learning_rate=2e-5, max_steps=30, per_device_train_batch_size=8, max_length=128,
                         lora=LoraSettings(r=8, alpha=16.0, dropout=0.0))


@dataclass
class RealignSettings:
    """Re-alignment of each objective's merged first-round model on the new pairs: DPO (``beta``) plus
    ``alpha`` times the chosen response's NLL divided by ``nll_length``: ``response`` (its own tokens, ours) or
    ``padded_batch`` (the official quirk: the padded width of the sub-batch, prompt included). ``train``
    trains a new LoRA on the merged model, which is also the reference."""

    beta: float = 0.1
    alpha: float = 0.1
    nll_length: str = "response"
    train: TrainSettings = field(default_factory=_realign_train)

    def __post_init__(self) -> None:
        check_range("method.realign.beta", self.beta, low=0, strict=True, fix="e.g. 0.1 (official)")
        check_range("method.realign.alpha", self.alpha, low=0, fix="0 is plain DPO; 0.1 is the official value")
        check_choice("method.realign.nll_length", self.nll_length, NLL_LENGTHS)
        if self.train.lora.r == 0:
            raise ConfigError("method.realign.train.lora.r=0: SIPO trains a new LoRA on each merged first-round "
                              "model (it is also the reference); set r > 0, e.g. 8")


@dataclass
class SIPOConfig:
    """SIPO (Li, Zhang et al., ACL Findings 2025): per-objective DPO experts (``experts``, the ``dpo`` method's
    own stages, LoRA), MOD samples on the conflicting training pairs at ``sample_weights`` (the first
    objective's weight; the rest is the second's), an optional review/rewrite, the Pareto filter under
    ``scorer`` (``implicit``: the experts' and the soups' DPO rewards, soups at ``soup_weights``; ``explicit``:
    the task's reward models), new pairs, re-alignment, ``iterations`` rounds; the family is MOD over the
    re-aligned experts."""

    experts: DPOConfig = field(default_factory=lambda: DPOConfig(train=TrainSettings(lora=LoraSettings(r=8, alpha=16.0))))
    sample_weights: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    max_conflicts: int | None = None  # the first N conflicting comparisons (official BeaverTails: 2500); None all
    sampling: GenerationSettings = field(default_factory=lambda: _greedy(48))  # official: greedy
    decoding: MODDecoding = field(default_factory=MODDecoding)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    scorer: str = "implicit"
    soup_weights: list[float] | None = None  # None: the sample weights (official)
    score_beta: float | None = None  # the implicit rewards' beta; None: the experts' beta (official 0.1 both)
    realign: RealignSettings = field(default_factory=RealignSettings)
    iterations: int = 1  # official: 1 round

    def __post_init__(self) -> None:
        check_choice("method.scorer", self.scorer, SCORERS)
        check_range("method.iterations", self.iterations, low=1, integer=True, fix="1 is the official single round")
        if self.max_conflicts is not None:
            check_range("method.max_conflicts", self.max_conflicts, low=1, integer=True, fix="or null for all")
        for name, weights in (("sample_weights", self.sample_weights), ("soup_weights", self.soup_weights or [0.5])):
            if not weights:
                raise ConfigError(f"method.{name}=[]: give at least one weight in (0, 1), e.g. [0.2, 0.4, 0.6, 0.8]")
            for i, a in enumerate(weights):
                check_range(f"method.{name}[{i}]", a, low=0, high=1, fix="the first objective's weight, in [0, 1]")
        if self.score_beta is not None:
            check_range("method.score_beta", self.score_beta, low=0, strict=True, fix="or null for the experts' beta")
        if self.experts.train.lora.r == 0:
            raise ConfigError("method.experts.train.lora.r=0: SIPO's experts are LoRA adapters on one base (its MOD "
                              "sampler and its soups interpolate them); set r > 0, e.g. 8")

    def check_run(self, run) -> None:
        """Two objectives (SIPO's weights and soups are pairwise), one expert each; the review expert is one."""
        objectives = list(run.task.objectives)
        if len(objectives) != 2:
            raise ConfigError(f"task.objectives={objectives}: SIPO resolves conflicts between two objectives (its "
                              "sample and soup weights are w and 1 - w); choose two")
        chosen = self.experts.objectives
        if chosen is not None and sorted(chosen) != sorted(objectives):
            raise ConfigError(f"method.experts.objectives={chosen}: SIPO needs one expert per task objective "
                              f"{objectives}; leave it unset (null)")
        if self.review.objective is not None and self.review.objective not in objectives:
            raise ConfigError(f"method.review.objective={self.review.objective!r} is not a task objective "
                              f"{objectives}; name the expert that writes the reviews, or null for no review")

    @property
    def implicit_beta(self) -> float:
        return self.experts.beta if self.score_beta is None else self.score_beta
