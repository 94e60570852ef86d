"""Panacea's settings: the aggregation, the preference draw and the SVD-LoRA, with every default that is ours
marked (see docs/methods/panacea.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from moalign.config import ConfigError, LoraSettings, TrainSettings, check_choice, check_range
from moalign.methods.preference_data import PairSettings, check_dpo_settings
from moalign.models.svd_lora import INITS
from moalign.train.losses import NLL_NORMALISATIONS

AGGREGATIONS = ("ls", "tche")
VARIANTS = ("dpo", "sft")


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

    ``variant``: ``dpo`` (L_k = objective k's DPO loss, ``beta``, ``reference``) or ``sft`` (L_k = the NLL of
    objective k's responses, the ones it ranks top in the pairs, normalised per ``nll_normalisation``:
    ``token`` as TRL's SFT loss, or ``sequence``; ``beta`` and ``reference`` are unused).
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

    def check_run(self, run) -> None:
        """The rules that need the task: one Tchebycheff reference loss per objective."""
        objectives = list(run.task.objectives)
        if self.tche_z is not None and len(self.tche_z) != len(objectives):
            raise ConfigError(f"method.tche_z has {len(self.tche_z)} entries for task.objectives={objectives}: "
                              "give one reference loss per objective (or null for 0)")
