"""MOD, multi-objective decoding (Shi et al., NeurIPS 2024, arXiv 2406.18853; srzer/MOD).

Train one DPO expert per objective (the ``dpo`` method's own stages ``train/w=1.00,0.00``, ...), then decode a
preference w by combining the experts' next-token log-probs (:mod:`moalign.models.mod_decoding`): no model is
trained per w. The family's policy is the K experts behind one generation hook (``Policy.generate``), so the
evaluation harness sweeps it like any other family. See docs/methods/mod.md.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from moalign.config import ConfigError, RunConfig
from moalign.eval.family import Policy, described_path
from moalign.methods.dpo_lw import DPOConfig, train_dpo
from moalign.methods.registry import MethodSpec
from moalign.models.mod_decoding import RULES, SCORE_MODES
from moalign.pipeline import Run

FACTORY = "moalign.methods.mod:family_from_description"


@dataclass
class MODDecoding:
    """How K experts decode together (shared by ``mod`` and SIPO's sampler): ``rule`` reverse_kl | forward_kl |
    alpha; ``alpha`` (> 0) for rule=alpha; ``scores``: cumulative (the official code) | per_token; ``batched``:
    K LoRA experts on one base in one forward per token (false: K forwards, the same tokens)."""

    rule: str = "reverse_kl"
    alpha: float = 0.5
    scores: str = "cumulative"
    batched: bool = True

    def __post_init__(self) -> None:
        from moalign.models.mod_decoding import check_rule

        try:
            check_rule(self.rule, self.alpha, self.scores)
        except ValueError as error:
            raise ConfigError(f"method.{error}") from None

    def family(self, experts: Sequence[str | Path], *, dtype: str, name: str) -> MODFamily:
        """The MOD family over saved ``experts`` (one folder per objective, in objective order)."""
        return MODFamily(experts, rule=self.rule, alpha=self.alpha, scores=self.scores, batched=self.batched,
                         dtype=dtype, name=name)


@dataclass
class MODConfig(MODDecoding):
    """``experts``: the DPO training of the K experts (LoRA for the batched path); the decoding fields are
    :class:`MODDecoding`'s."""

    experts: DPOConfig = field(default_factory=DPOConfig)

    def check_run(self, run: RunConfig) -> None:
        chosen = self.experts.objectives
        if chosen is not None and sorted(chosen) != sorted(run.task.objectives):
            raise ConfigError(f"method.experts.objectives={chosen}: MOD needs one expert per task objective "
                              f"{list(run.task.objectives)}; leave it unset (null)")


class MODFamily:
    """``policy(w)`` decodes with the K ``experts`` (saved folders, one per objective, in objective order)
    combined by ``rule`` at weights w; the experts load once, on the first policy."""

    def __init__(self, experts: Sequence[str | Path], *, rule: str = "reverse_kl", alpha: float = 0.5,
                 scores: str = "cumulative", batched: bool = True, dtype: str = "float32", name: str = "mod"):
        from moalign.models.mod_decoding import check_rule

        check_rule(rule, alpha, scores)
        self.experts = [str(p) for p in experts]
        self.rule, self.alpha, self.scores, self.batched, self.dtype, self.name = rule, alpha, scores, batched, dtype, name
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            import torch

            from moalign.models.mod_decoding import load_experts, to_device

            self._loaded = load_experts(self.experts, dtype=self.dtype, batched=self.batched)
            if torch.cuda.is_available():
                to_device(self._loaded[0], "cuda")
        return self._loaded

    @contextmanager
    def policy(self, w) -> Iterator[Policy]:
        w = np.asarray(w, dtype=float)
        if w.shape != (len(self.experts),):
            raise ValueError(f"MOD family {self.name!r} has {len(self.experts)} experts; got preference {w.tolist()}")
        experts, tokenizer, model = self._load()
        yield Policy(model=model, tokenizer=tokenizer, generate=partial(self.decode, experts, w, tokenizer))

    def decode(self, experts, w, tokenizer, *, input_ids, attention_mask, stop_strings=(), **settings):
        """``model.generate``'s keyword arguments in, prompt + response ids out (the Policy hook)."""
        from moalign.models.mod_decoding import mod_generate

        return mod_generate(experts, w, input_ids, attention_mask, rule=self.rule, alpha=self.alpha,
                            scores=self.scores, stop_strings=stop_strings, tokenizer=tokenizer, **settings)

    def describe(self) -> dict:
        """The experts as names under their common folder ``path`` (made relative to the run when saved)."""
        root = os.path.commonpath([os.path.abspath(p) for p in self.experts])
        if len(self.experts) == 1:
            root = os.path.dirname(root)
        return {"type": "mod", "factory": FACTORY, "name": self.name, "path": root,
                "experts": [os.path.relpath(os.path.abspath(p), root) for p in self.experts], "rule": self.rule,
                "alpha": self.alpha, "scores": self.scores, "batched": self.batched, "dtype": self.dtype}


def family_from_description(description: dict, root: str | Path | None = None) -> MODFamily:
    """Rebuild a saved MOD family (the ``factory`` of family persistence); ``path`` is relative to ``root``."""
    path = described_path(description, root, ("experts", "rule", "scores"), "MOD")
    return MODFamily([path / e for e in description["experts"]], rule=description["rule"],
                     alpha=description.get("alpha", 0.5), scores=description["scores"],
                     batched=description.get("batched", True), dtype=description.get("dtype", "float32"),
                     name=description.get("name", "mod"))


def train_mod(config: RunConfig, run: Run) -> MODFamily:
    """The ``dpo`` method's stages for the experts (one per objective), then the MOD family over them."""
    method: MODConfig = config.method
    method.check_run(config)
    experts = train_dpo(dataclasses.replace(config, method=method.experts), run)
    one_hot = np.eye(len(config.task.objectives))
    paths = [experts.checkpoint_for(e) for e in one_hot]
    return method.family(paths, dtype=config.model.dtype, name=f"mod-{method.rule}")


METHOD = MethodSpec("mod", MODConfig, train_mod,
                    f"decode K DPO experts together: next-token scores by {'/'.join(RULES)} "
                    f"({'/'.join(SCORE_MODES)} scores)")
