"""Weight soups: K expert policies trained on one base, interpolated into one model for a preference w.

Rewarded Soups (Ramé et al., NeurIPS 2023) and DPO Soups (SIPO's baseline) both build theta(w) from experts
theta_1..theta_K (one per objective) by weight interpolation; they differ only in how the experts were trained
(RL or DPO). An expert here is just a saved policy folder: a PEFT LoRA adapter on its recorded base, or a full
model. Three interpolations, named by ``mode``:

- ``lora_factors``: A(w) = sum_i w_i A_i and B(w) = sum_i w_i B_i, key by key (the official Rewarded Soups
  LLaMA code and SIPO). The update B(w) A(w) * s is *not* sum_i w_i s B_i A_i: it has cross terms B_i A_j.
- ``merged_delta``: the exact mixture of the experts' updates, sum_i w_i s_i B_i A_i, held as one LoRA of rank
  sum_i r_i (A = the stacked w_i s_i A_i, B = the side-by-side B_i; PEFT's ``add_weighted_adapter("cat")``).
- ``full_weights``: theta(w) = sum_i w_i theta_i over every weight (RiC's re-implementation): for full
  fine-tuned experts every tensor; for LoRA experts W0 + sum_i w_i s_i B_i A_i merged into the base weights
  (the same function as ``merged_delta`` since sum_i w_i = 1, computed another way).

:class:`Soup` loads the base (or the first full expert) and the expert tensors once; ``mixed(w)`` writes the
interpolated tensors into that one model and puts the clean state back afterwards (the soup adapter zeroed,
or the loaded weights), so a soup never reloads a model per w and no w leaks into the next.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from moalign.models.load import load_causal_lm, load_tokenizer
from moalign.pareto.weights import validate_preference

MODES = ("lora_factors", "merged_delta", "full_weights")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SOUP_ADAPTER = "soup"
PEFT_PREFIX = "base_model.model."
# config.json keys that differ between two saves of one architecture
UNCHECKED_CONFIG_KEYS = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "use_cache"}
# LoRA options whose experts a plain A/B soup would silently get wrong, with the value that is supported
PLAIN_LORA = {"use_dora": False, "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None, "lora_bias": False}
FACTOR_FIELDS = ("r", "lora_alpha", "use_rslora")  # must agree for lora_factors (one scaling s for all)


@dataclass(frozen=True)
class Expert:
    """One saved expert: ``kind`` "lora" (``base`` = the base its adapter_config.json names) or "full"."""

    folder: str
    kind: str
    base: str | None
    config: dict


def read_expert(folder: str | Path) -> Expert:
    """The expert saved in ``folder`` (a LoRA adapter folder or a full model folder); reads JSON only."""
    folder = Path(folder)
    if (folder / ADAPTER_CONFIG).is_file():
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        if config.get("peft_type", "LORA") != "LORA" or (folder / "svd_lora_config.json").is_file():
            raise ValueError(f"{folder}: a {config.get('peft_type')} adapter that is not plain LoRA (SVD-LoRA is "
                             "Panacea's); a soup interpolates LoRA adapters or full models")
        for key, plain in PLAIN_LORA.items():
            if config.get(key) is not None and config[key] != plain:
                raise ValueError(f"{folder}/{ADAPTER_CONFIG}: {key}={config[key]!r} is not supported by the soup, "
                                 f"which interpolates plain LoRA A and B matrices; train the expert with {key}={plain!r}")
        return Expert(str(folder), "lora", config["base_model_name_or_path"], config)
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return Expert(str(folder), "full", None, json.loads((folder / "config.json").read_text(encoding="utf-8")))
    raise ValueError(f"{folder}: not an expert policy folder; expected a LoRA adapter ({ADAPTER_CONFIG}) or a full "
                     "model (config.json + *.safetensors), as a training stage saves them")


def same_model(a: str, b: str) -> bool:
    """Whether two model names are one model: equal names, or paths to one folder."""
    return a == b or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


def check_experts(experts: Sequence[Expert], mode: str, *, base: str | None = None) -> None:
    """ValueError unless ``experts`` can be souped with ``mode``: two or more, one kind, one base (LoRA: the
    recorded base, and ``base`` when given; full: one architecture config), LoRA settings equal for
    ``lora_factors``."""
    if mode not in MODES:
        raise ValueError(f"soup mode {mode!r}: choose one of {', '.join(MODES)}")
    if len(experts) < 2:
        raise ValueError(f"a soup needs two or more experts (one per objective), got {len(experts)}")
    kinds = {e.kind for e in experts}
    if len(kinds) > 1:
        raise ValueError("the experts mix LoRA adapters and full models: "
                         + ", ".join(f"{e.folder} ({e.kind})" for e in experts) + "; train them all one way")
    if kinds == {"full"}:
        if mode != "full_weights":
            raise ValueError(f"soup mode {mode!r} interpolates LoRA factors, but the experts are full models "
                             f"({experts[0].folder}, ...); use mode='full_weights', or train LoRA experts (lora.r > 0)")
        _check_same_architecture(experts)
        return
    for expert in experts:
        reference = base if base is not None else experts[0].base
        if not same_model(expert.base, reference):
            raise ValueError(f"{expert.folder}: trained on base {expert.base!r}, but the soup's base is {reference!r}; "
                             "every expert must be trained on the same base model")
    if mode == "lora_factors":
        for key in FACTOR_FIELDS:
            values = [e.config.get(key) for e in experts]
            if len(set(map(str, values))) > 1:
                raise ValueError(f"mode 'lora_factors' adds A and B key by key, so every expert needs the same {key}; "
                                 f"got {values} for {[e.folder for e in experts]}; use mode='merged_delta' (exact for "
                                 "any ranks), or train the experts with one LoRA setting")


def _check_same_architecture(experts: Sequence[Expert]) -> None:
    first = {k: v for k, v in experts[0].config.items() if k not in UNCHECKED_CONFIG_KEYS}
    for expert in experts[1:]:
        other = {k: v for k, v in expert.config.items() if k not in UNCHECKED_CONFIG_KEYS}
        differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if differ:
            raise ValueError(f"{expert.folder}/config.json differs from {experts[0].folder}/config.json in {differ}: "
                             "full experts must share one base architecture")


def lora_scaling(config: dict) -> float:
    """PEFT LoRA's s: alpha / r, or alpha / sqrt(r) with rsLoRA."""
    r, alpha = config["r"], config["lora_alpha"]
    return alpha / r**0.5 if config.get("use_rslora") else alpha / r


def load_lora_factors(folder: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{module path: (A, B)}`` of a saved LoRA adapter (A: (r, in), B: (out, r)); other keys are refused."""
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(str(Path(folder) / ADAPTER_WEIGHTS)).items():
        stem, _, part = key.removesuffix(".weight").rpartition(".")
        if part not in ("lora_A", "lora_B") or not key.endswith(".weight"):
            raise ValueError(f"{folder}/{ADAPTER_WEIGHTS}: tensor {key!r} is not a LoRA A or B weight; the soup "
                             "handles LoRA on linear layers only")
        factors.setdefault(stem.removeprefix(PEFT_PREFIX), {})[part] = tensor
    broken = [m for m, ab in factors.items() if len(ab) != 2]
    if broken:
        raise ValueError(f"{folder}/{ADAPTER_WEIGHTS}: modules {broken} lack their A or B matrix")
    return {m: (ab["lora_A"], ab["lora_B"]) for m, ab in factors.items()}


def weighted_sum(tensors: Sequence[torch.Tensor], w: Sequence[float]) -> torch.Tensor:
    """sum_i w_i t_i in float32 (terms with w_i = 0 skipped, so a one-hot w returns t_i exactly), cast back."""
    total = sum(float(wi) * t.float() for wi, t in zip(w, tensors, strict=True) if wi != 0)
    return total.to(tensors[0].dtype)


def factor_soup(factors: Sequence[tuple[torch.Tensor, torch.Tensor]], w) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_i w_i A_i, sum_i w_i B_i): ``lora_factors``'s A and B of one module. Their product is not the
    mixture of the experts' updates (cross terms B_i A_j):

    >>> one, three = (torch.tensor([[1.0]]),) * 2, (torch.tensor([[3.0]]),) * 2
    >>> a, b = factor_soup([one, three], [0.5, 0.5])
    >>> (b @ a).item(), delta_soup([one, three], [1.0, 1.0], [0.5, 0.5]).item()
    (4.0, 5.0)
    """
    return weighted_sum([a for a, _ in factors], w), weighted_sum([b for _, b in factors], w)


def stacked_factors(factors, scalings: Sequence[float], w) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) of rank sum_i r_i with B A = sum_i w_i s_i B_i A_i exactly: A stacks w_i s_i A_i, B sets the
    B_i side by side (``merged_delta``; scaling 1)."""
    a = torch.cat([(float(wi) * s * ai.float()).to(ai.dtype) for (ai, _), s, wi in zip(factors, scalings, w, strict=True)])
    return a, torch.cat([bi for _, bi in factors], dim=1)


def delta_soup(factors, scalings: Sequence[float], w) -> torch.Tensor:
    """sum_i w_i s_i B_i A_i in float32: the exact weighted sum of the experts' weight updates."""
    return sum(float(wi) * s * (bi.float() @ ai.float())
               for (ai, bi), s, wi in zip(factors, scalings, w, strict=True) if wi != 0)


class Soup:
    """K experts on one base, loaded once; ``mixed(w)`` writes their ``mode`` interpolation into one model.

    ``base``: the base every LoRA expert must name (default: the first expert's); ``dtype`` as
    ``model.dtype``; ``device``: where the model and the expert tensors live (None: where loaded, the CPU).
    """

    def __init__(self, folders: Sequence[str | Path], mode: str = "lora_factors", *, base: str | None = None,
                 dtype: str = "float32", device: str | None = None):
        self.experts = [read_expert(f) for f in folders]
        check_experts(self.experts, mode, base=base)
        self.mode = mode
        first = self.experts[0]
        self.tokenizer = load_tokenizer(first.folder if _has_tokenizer(first.folder) or first.kind == "full" else first.base)
        if first.kind == "full":
            self.model = load_causal_lm(first.folder, dtype=dtype)
            self._writer = _FullWeights(self.model, [e.folder for e in self.experts])
        else:
            self.model = load_causal_lm(first.base, dtype=dtype)
            if len(self.tokenizer) > self.model.get_input_embeddings().weight.shape[0]:
                self.model.resize_token_embeddings(len(self.tokenizer))
            writer = {"lora_factors": _LoraFactors, "merged_delta": _StackedDelta, "full_weights": _MergedWeights}[mode]
            self._writer = writer(self.model, self.experts)
            self.model = self._writer.model
        if device is not None:
            self.model.to(device)
            self._writer.to(device)
        self.model.eval()

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    @contextmanager
    def mixed(self, w) -> Iterator:
        """The model with theta(w) written in (``w``: one simplex weight per expert); clean state restored after."""
        w = validate_preference(w, self.num_experts, name=f"soup preference (one weight per expert, {self.num_experts})")
        try:
            with torch.no_grad():
                self._writer.write(w)
            yield self.model
        finally:
            with torch.no_grad():
                self._writer.restore()


def _has_tokenizer(folder: str) -> bool:
    return (Path(folder) / "tokenizer_config.json").is_file()


def _same_modules(experts: Sequence[Expert], factors: Sequence[dict]) -> list[str]:
    modules = sorted(factors[0])
    for expert, f in zip(experts[1:], factors[1:], strict=True):
        if sorted(f) != modules:
            raise ValueError(f"{expert.folder}: its LoRA wraps other modules than {experts[0].folder} "
                             f"({sorted(set(f) ^ set(modules))[:4]} ...); train every expert on the same target_modules")
    return modules


class _LoraWriter:
    """Shared by the two adapter modes: one PEFT adapter ``soup`` on the base, its factors rewritten per w."""

    def __init__(self, base, experts: Sequence[Expert], rank_of, alpha_of, use_rslora: bool):
        self.factors = [load_lora_factors(e.folder) for e in experts]
        self.scalings = [lora_scaling(e.config) for e in experts]
        self.modules = _same_modules(experts, self.factors)
        self.model = _soup_adapter(base, self.modules, rank_of(experts), alpha_of(experts), use_rslora)
        self.layers = {m: self.model.base_model.model.get_submodule(m) for m in self.modules}
        self.restore()

    def to(self, device) -> None:
        self.factors = [{m: (a.to(device), b.to(device)) for m, (a, b) in f.items()} for f in self.factors]

    def factors_of(self, w) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def write(self, w) -> None:
        for module, (a, b) in self.factors_of(w).items():
            layer = self.layers[module]
            layer.lora_A[SOUP_ADAPTER].weight.copy_(a)
            layer.lora_B[SOUP_ADAPTER].weight.copy_(b)

    def restore(self) -> None:
        """A = B = 0: the soup adapter adds nothing, the model is its base."""
        with torch.no_grad():
            for layer in self.layers.values():
                layer.lora_A[SOUP_ADAPTER].weight.zero_()
                layer.lora_B[SOUP_ADAPTER].weight.zero_()


class _LoraFactors(_LoraWriter):
    def __init__(self, base, experts):
        first = experts[0].config
        super().__init__(base, experts, lambda e: first["r"], lambda e: first["lora_alpha"], bool(first.get("use_rslora")))
        for module in self.modules:
            shapes = {tuple(t.shape) for f in self.factors for t in f[module]}
            if len(shapes) != 2:
                raise ValueError(f"mode 'lora_factors': the experts' LoRA matrices of {module} differ in shape ({shapes}); "
                                 "use mode='merged_delta'")

    def factors_of(self, w):
        return {m: factor_soup([f[m] for f in self.factors], w) for m in self.modules}


class _StackedDelta(_LoraWriter):
    def __init__(self, base, experts):
        rank = sum(int(e.config["r"]) for e in experts)
        super().__init__(base, experts, lambda e: rank, lambda e: rank, False)  # scaling 1: s_i folded into A

    def factors_of(self, w):
        return {m: stacked_factors([f[m] for f in self.factors], self.scalings, w) for m in self.modules}


def _soup_adapter(base, modules: Sequence[str], rank: int, alpha: float, use_rslora: bool):
    """``base`` with one LoRA adapter ``soup`` on exactly ``modules`` (full module paths), eval mode."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, use_rslora=use_rslora, lora_dropout=0.0,
                        target_modules=list(modules), task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):  # the adapter's random init must not move the caller's RNG
        model = get_peft_model(base, config, adapter_name=SOUP_ADAPTER)
    model.eval()
    return model


class _MergedWeights:
    """``full_weights`` on LoRA experts: W = W0 + sum_i w_i s_i B_i A_i written into the base weights."""

    def __init__(self, base, experts: Sequence[Expert]):
        self.model = base
        self.factors = [load_lora_factors(e.folder) for e in experts]
        self.scalings = [lora_scaling(e.config) for e in experts]
        self.modules = _same_modules(experts, self.factors)
        self.weights = {m: base.get_submodule(m).weight for m in self.modules}
        self.original = {m: p.detach().clone() for m, p in self.weights.items()}

    def to(self, device) -> None:
        self.factors = [{m: (a.to(device), b.to(device)) for m, (a, b) in f.items()} for f in self.factors]
        self.original = {m: t.to(device) for m, t in self.original.items()}

    def write(self, w) -> None:
        for m, param in self.weights.items():
            delta = delta_soup([f[m] for f in self.factors], self.scalings, w)
            param.copy_((self.original[m].float() + delta).to(param.dtype))

    def restore(self) -> None:
        for m, param in self.weights.items():
            param.copy_(self.original[m])


class _FullWeights:
    """``full_weights`` on full experts: every saved tensor theta = sum_i w_i theta_i (kept on the CPU)."""

    def __init__(self, model, folders: Sequence[str]):
        self.model = model
        self.tensors = [_load_weights(f) for f in folders]
        self.targets = model.state_dict()  # shares storage with the parameters and buffers
        for folder, tensors in zip(folders, self.tensors, strict=True):
            wrong = sorted(k for k in tensors if k not in self.targets or tensors[k].shape != self.targets[k].shape)
            missing = sorted(set(self.tensors[0]) ^ set(tensors))
            if wrong or missing:
                raise ValueError(f"{folder}: its tensors do not match {folders[0]}'s model (unknown or reshaped "
                                 f"{wrong[:3]}, not in both {missing[:3]}); full experts must share one architecture")

    def to(self, device) -> None:
        """The expert tensors stay on the CPU (K full models); each mixed tensor is copied to the device."""
        self.targets = self.model.state_dict()

    def write(self, w) -> None:
        for key in self.tensors[0]:
            self.targets[key].copy_(weighted_sum([t[key] for t in self.tensors], w))

    def restore(self) -> None:
        for key, tensor in self.tensors[0].items():
            self.targets[key].copy_(tensor)


def _load_weights(folder: str) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors
