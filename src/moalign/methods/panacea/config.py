"""Panacea's settings: the aggregation, the preference draw and the SVD-LoRA, with every default that is ours
marked (see docs/methods/panacea.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from moalign.config import ADDED_LATER, ConfigError, LoraSettings, TrainSettings, check_choice, check_range
from moalign.methods.morlhf import REWARD_SCALES
from moalign.methods.preference_data import PairSettings, check_dpo_settings
from moalign.models.svd_lora import INITS
from moalign.train.losses import NLL_NORMALISATIONS
from moalign.train.online import GRPOSettings

AGGREGATIONS = ("ls", "tche")
VARIANTS = ("dpo", "sft", "rlhf")


def _svd_lora_train() -> TrainSettings:
    return TrainSettings(lora=LoraSettings(r=8, alpha=16.0))  # k = 8 [MEM]; alpha/(k+m) as LoRA's alpha/r [INF]


@dataclass
class PanaceaConfig:
    """Panacea (Zhong et al., NeurIPS 2024): one SVD-LoRA model for the whole front.

    ``train.lora.r`` is k, the preference-agnostic singular values (the adapter's rank is k + m, m = number of
    objectives); ``train.lora.alpha`` / ``dropout`` / ``target_modules`` are LoRA's. Each optimiser step draws
    lambda ~ Dirichlet(``dirichlet_alpha``) (Algorithm 1: once per batch; ``per_sample`` draws one per pair
    or response, ``ls`` only), writes it into every layer and minimises sum_k lambda_k L_k (``ls``) or
    max_k lambda_k (L_k - z_k) (``tche``, z = ``tche_z``, default 0 [UNKNOWN in the paper]).

    ``variant``: ``dpo`` (L_k = objective k's DPO loss, ``beta``, ``reference``), ``sft`` (L_k = the NLL of
    objective k's responses, the ones it ranks top in the pairs, normalised per ``nll_normalisation``:
    ``token`` as TRL's SFT loss, or ``sequence``; ``beta`` and ``reference`` are unused) or ``rlhf`` (online
    GRPO on the task's train prompts, ``max_prompts`` of them, with the reward lambda . r, r scored per
    ``reward_scale`` as MORLHF's, and ``grpo``'s KL penalty; lambda is drawn once per generation batch and held in
    the model for that batch's loss steps; ``ls`` only, no ``per_sample``; ``pairs``, ``beta``, ``reference``
    and ``nll_normalisation`` are unused).
    """

    variant: str = "dpo"
    aggregation: str = "ls"  # ls | tche
    beta: float = 0.1
    tche_z: list[float] | None = None  # Tchebycheff reference point of the K losses; None = 0
    dirichlet_alpha: float = 1.0  # 1.0 = uniform on the simplex (Algorithm 1) [INF]
    per_sample: bool = False
    init: str = "lora"  # lora (B = 0, sigma = s = 1) | svd (AdaLoRA: A, B ~ N(0, 0.02), sigma = s = 0) [INF]
    reference: str = "precomputed"  # precomputed | model | adapter: the base model every time
    nll_normalisation: str = "token"  # sft: token (TRL's SFT loss) | sequence (each response's own mean)
    pairs: PairSettings = field(default_factory=PairSettings)
    train: TrainSettings = field(default_factory=_svd_lora_train)
    # rlhf only (added with that variant: the dpo/sft stages' hashes leave them out)
    grpo: GRPOSettings = field(default_factory=GRPOSettings, metadata=ADDED_LATER)
    reward_scale: str = field(default="raw", metadata=ADDED_LATER)  # raw | zscore, as MORLHF's
    max_prompts: int | None = field(default=512, metadata=ADDED_LATER)  # distinct train prompts [ours, as MORLHF]

    def __post_init__(self) -> None:
        check_choice("method.variant", self.variant, VARIANTS)
        check_choice("method.aggregation", self.aggregation, AGGREGATIONS)
        check_choice("method.init", self.init, INITS)
        check_choice("method.nll_normalisation", self.nll_normalisation, NLL_NORMALISATIONS)
        check_dpo_settings(self.beta, self.reference)
        check_range("method.dirichlet_alpha", self.dirichlet_alpha, low=0, strict=True,
                    fix="1.0 draws lambda uniformly from the simplex")
        check_range("method.train.lora.alpha", self.train.lora.alpha, low=0, strict=True, fix="e.g. 16")
        if self.aggregation == "tche" and self.per_sample:
            raise ConfigError("method.per_sample=true with method.aggregation='tche': the Tchebycheff max is over "
                              "the objectives' mean losses, so it takes one lambda per step; use 'ls' or per_sample=false")
        if self.tche_z is not None:
            for k, z in enumerate(self.tche_z):
                check_range(f"method.tche_z[{k}]", z, fix="one finite loss value per objective, e.g. 0")
        check_choice("method.reward_scale", self.reward_scale, REWARD_SCALES)
        if self.max_prompts is not None:
            check_range("method.max_prompts", self.max_prompts, low=1, integer=True, fix="or null for every prompt")
        if self.variant == "rlhf":
            self._check_rlhf()

    def _check_rlhf(self) -> None:
        if self.aggregation == "tche":
            raise ConfigError(
                "method.aggregation='tche' with method.variant='rlhf' is not implemented: Tchebycheff is "
                "min_k lambda_k (J_k - z_k) over the policy's expected rewards J_k, not a reward of one completion "
                "(a per-completion min_k lambda_k (r_k - z_k) optimises E[min], another objective), and z in reward "
                "units is not given (docs/methods/panacea.md); use method.aggregation=ls, or variant dpo / sft "
                "for tche")
        if self.grpo.backend == "vllm":
            raise ConfigError(
                "method.grpo.backend=vllm with method.variant='rlhf': TRL hands the vLLM engine the policy's weights, "
                "not the lambda written into Panacea's SVD-LoRA layers for each generation batch, so the rollouts "
                "would come from another policy; set method.grpo.backend=hf")
        if self.per_sample:
            raise ConfigError(
                "method.per_sample=true with method.variant='rlhf': the RLHF variant draws one lambda per generation "
                "batch (TRL scores a batch with one weight vector); set method.per_sample=false")

    def check_run(self, run) -> None:
        """The rules that need the task: one Tchebycheff reference loss per objective."""
        objectives = list(run.task.objectives)
        if self.tche_z is not None and len(self.tche_z) != len(objectives):
            raise ConfigError(f"method.tche_z has {len(self.tche_z)} entries for task.objectives={objectives}: "
                              "give one reference loss per objective (or null for 0)")
