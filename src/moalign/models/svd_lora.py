"""Panacea's SVD-LoRA: one adapter whose last m singular values are the preference vector.

For each adapted linear layer W0 (out x in)::

    W = W0 + scaling * B diag(sigma_1..sigma_k, s*lambda_1..s*lambda_m) A        (A: (k+m) x in, B: out x (k+m))

A, B, the k preference-agnostic singular values sigma and one scale s per layer are trained; lambda (the
preference over m objectives) is an input written by :func:`set_preference` and never trained
(next-methods.md 1.2). ``scaling = alpha / (k + m)``, as a plain LoRA of the same total rank [INF].

The layer lives inside PEFT through LoRA's custom-module dispatch (``LoraConfig._register_custom_module``;
PEFT's method registry cannot take a method from outside PEFT, next-methods.md 1.6), so ``save_pretrained`` /
``PeftModel.from_pretrained`` (safetensors), ``disable_adapter()`` as the DPO reference, TRL's
``peft_config`` plumbing and accelerate work as for LoRA. What LoRA's own config cannot hold (m, the init)
is written next to ``adapter_config.json`` in :data:`CONFIG_FILE`; :func:`peft_config_for` rebuilds the
registered config from a saved folder. The parameter layout follows AdaLoRA's ``SVDLinear`` (``lora_A`` rows
are the right singular vectors, ``lora_E`` the singular values, ``lora_B`` columns the left ones); its
``ranknum`` division and orthogonality penalty are not used (Panacea names neither [MEM]).

lambda is one vector for the whole batch (the paper's Algorithm 1), or one row per sample, a (B, m) tensor,
so that a batch mixing preferences costs one forward: ``(x A^T) * diag`` is row-wise, so each row sees its
own singular values. Merging into W0 is only defined for one lambda (:func:`merge_preference`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import check_adapters_to_merge
from torch import nn

CONFIG_FILE = "svd_lora_config.json"
INITS = ("lora", "svd")


@dataclass(frozen=True)
class SVDLoraSpec:
    """What PEFT's ``LoraConfig`` cannot carry: the number of preference dimensions and the init.

    ``init="lora"`` [INF, ours]: A Kaiming-uniform, B zero, sigma = s = 1. The adapter is the identity at init
    for every lambda, and with lambda = 1 it is exactly a plain LoRA of rank k + m (the fair baseline).
    ``init="svd"``: AdaLoRA's init, A and B ~ N(0, 0.02), sigma = s = 0 (also the identity at init).
    """

    n_preferences: int
    init: str = "lora"

    def __post_init__(self) -> None:
        if self.n_preferences < 1:
            raise ValueError(f"n_preferences={self.n_preferences}: Panacea needs at least one preference dimension")
        if self.init not in INITS:
            raise ValueError(f"init={self.init!r}: choose one of {list(INITS)}")


class PanaceaLinear(nn.Module, LoraLayer):
    """An ``nn.Linear`` with an SVD-LoRA adapter whose last ``n_preferences`` singular values are s * lambda."""

    adapter_layer_names = ("lora_A", "lora_B", "lora_E", "lora_pref_scale")
    other_param_names = ("r", "lora_alpha", "scaling", "lora_dropout")

    def __init__(self, base_layer: nn.Module, adapter_name: str, config, *, spec: SVDLoraSpec, r: int = 8,
                 lora_alpha: int = 8, **kwargs: Any) -> None:
        super().__init__()
        LoraLayer.__init__(self, base_layer)
        self.lora_A = nn.ParameterDict({})
        self.lora_B = nn.ParameterDict({})
        self.lora_E = nn.ParameterDict({})  # the k preference-agnostic singular values sigma, (k,)
        self.lora_pref_scale = nn.ParameterDict({})  # s, (1,)
        self.spec = spec
        self.fan_in_fan_out = config.fan_in_fan_out
        self._preference: torch.Tensor | None = None  # (m,) or (B, m); not a parameter, not saved
        self._diagonal_cache: tuple | None = None  # (key, diagonal) for forwards without gradients
        self.get_base_layer().weight.requires_grad = False
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, r, lora_alpha, config=config)

    @property
    def n_general(self) -> int:
        """k: the singular values that do not depend on the preference."""
        return self.r[self.active_adapters[0]] - self.spec.n_preferences

    def update_layer(self, adapter_name: str, r: int, lora_alpha: int, config, **kwargs: Any) -> None:
        m = self.spec.n_preferences
        if r < m:
            raise ValueError(f"SVD-LoRA rank r={r} is below n_preferences={m}: r counts the k general plus the m "
                             "preference singular values (r = k + m)")
        if self.fan_in_fan_out:
            raise ValueError("SVD-LoRA supports nn.Linear targets only (fan_in_fan_out=False)")
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = lora_alpha
        self.scaling[adapter_name] = lora_alpha / r
        self.lora_dropout[adapter_name] = nn.Dropout(config.lora_dropout) if config.lora_dropout > 0 else nn.Identity()
        self.lora_A[adapter_name] = nn.Parameter(torch.empty(r, self.in_features))
        self.lora_B[adapter_name] = nn.Parameter(torch.empty(self.out_features, r))
        self.lora_E[adapter_name] = nn.Parameter(torch.empty(r - m))
        self.lora_pref_scale[adapter_name] = nn.Parameter(torch.empty(1))
        self.reset_lora_parameters(adapter_name)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def reset_lora_parameters(self, adapter_name: str) -> None:
        a, b = self.lora_A[adapter_name], self.lora_B[adapter_name]
        sigma, scale = self.lora_E[adapter_name], self.lora_pref_scale[adapter_name]
        with torch.no_grad():
            if self.spec.init == "lora":
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT LoRA's default for lora_A
                nn.init.zeros_(b)
                sigma.fill_(1.0)
                scale.fill_(1.0)
            else:
                nn.init.normal_(a, mean=0.0, std=0.02)
                nn.init.normal_(b, mean=0.0, std=0.02)
                sigma.zero_()
                scale.zero_()

    # the preference ------------------------------------------------------------------------------------------

    def set_preference(self, lam: torch.Tensor | None) -> None:
        """Write lambda: (m,) for every row, (B, m) one per row, or None (unset: forward refuses)."""
        self._diagonal_cache = None
        if lam is None:
            self._preference = None
            return
        lam = torch.as_tensor(lam, dtype=torch.float32).detach()
        if lam.ndim not in (1, 2) or lam.shape[-1] != self.spec.n_preferences:
            raise ValueError(f"preference of shape {tuple(lam.shape)}: expected ({self.spec.n_preferences},) or "
                             f"(batch, {self.spec.n_preferences}), one weight per objective")
        # on the adapter's device now, so that no forward copies it host -> device (and waits for the copy)
        self._preference = lam.to(next(iter(self.lora_A.values())).device)

    def _diagonal(self, adapter: str, rows: int | None, like: torch.Tensor) -> torch.Tensor:
        """[sigma; s * lambda]: (k+m,) for one lambda, (rows, k+m) for one lambda per row."""
        lam = self._preference
        if lam is None:
            raise RuntimeError("no preference set on the SVD-LoRA model: call moalign.models.svd_lora."
                               "set_preference(model, lam) before the forward")
        lam = lam.to(like.device, like.dtype)
        sigma = self.lora_E[adapter]
        pref = self.lora_pref_scale[adapter] * lam
        if lam.ndim == 1:
            return torch.cat([sigma, pref])
        if rows is not None and lam.shape[0] != rows:
            raise ValueError(f"{lam.shape[0]} preference rows for a batch of {rows}: give one row per sample "
                             "(or one vector for all)")
        return torch.cat([sigma.expand(lam.shape[0], -1), pref], dim=1)

    def _forward_diagonal(self, adapter: str, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The diagonal shaped to broadcast over ``x``'s rows. Without gradients (generation: one forward per
        token) it is kept until the preference or sigma / s change, so decoding does not rebuild it per token."""
        sigma, scale = self.lora_E[adapter], self.lora_pref_scale[adapter]
        key = (adapter, x.shape[0], x.ndim, id(sigma), sigma._version, id(scale), scale._version, like.dtype,
               like.device)
        if not torch.is_grad_enabled() and self._diagonal_cache is not None and self._diagonal_cache[0] == key:
            return self._diagonal_cache[1]
        diagonal = self._diagonal(adapter, x.shape[0], like)
        if diagonal.ndim == 2:  # one row per sample: broadcast over the sequence dimensions
            diagonal = diagonal.view(diagonal.shape[0], *([1] * (x.ndim - 2)), diagonal.shape[1])
        self._diagonal_cache = None if torch.is_grad_enabled() else (key, diagonal)
        return diagonal

    # PEFT's layer interface ----------------------------------------------------------------------------------

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        """scaling * B diag(sigma, s*lambda) A, for the one lambda set (merging needs a single preference)."""
        a = self.lora_A[adapter]
        if self._preference is not None and self._preference.ndim == 2:
            raise ValueError("a per-sample preference cannot be merged: set one vector (m,) first")
        diagonal = self._diagonal(adapter, None, a)
        return (self.lora_B[adapter] * diagonal) @ a * self.scaling[adapter]

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        for adapter in check_adapters_to_merge(self, adapter_names):
            if adapter not in self.lora_A:
                continue
            weight = self.get_base_layer().weight
            delta = self.get_delta_weight(adapter).to(weight.dtype)
            if safe_merge and not torch.isfinite(weight.data + delta).all():
                raise ValueError(f"NaNs detected in the merged weights of adapter {adapter!r}")
            weight.data += delta
            self.merged_adapters.append(adapter)

    def unmerge(self) -> None:
        while self.merged_adapters:
            adapter = self.merged_adapters.pop()
            if adapter in self.lora_A:
                weight = self.get_base_layer().weight
                weight.data -= self.get_delta_weight(adapter).to(weight.dtype)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        for adapter in self.active_adapters:
            if adapter not in self.lora_A:
                continue
            a, b = self.lora_A[adapter], self.lora_B[adapter]
            diagonal = self._forward_diagonal(adapter, x, a)
            h = self.lora_dropout[adapter](self._cast_input_dtype(x, a.dtype)) @ a.T
            result = result + ((h * diagonal) @ b.T * self.scaling[adapter]).to(result.dtype)
        return result

    def __repr__(self) -> str:
        return "svd_lora." + super().__repr__()


# the model-level API -------------------------------------------------------------------------------------------


def panacea_layers(model: nn.Module) -> list[PanaceaLinear]:
    return [module for module in model.modules() if isinstance(module, PanaceaLinear)]


def set_preference(model: nn.Module, lam) -> None:
    """Write the preference into every SVD-LoRA layer of ``model``: one vector (m,) for the whole batch, or a
    (B, m) tensor with one row per sample (a mixed batch in one forward); None unsets it. Nothing is reloaded
    or retrained."""
    layers = panacea_layers(model)
    if not layers:
        raise ValueError("set_preference: the model has no SVD-LoRA (Panacea) layers")
    lam = None if lam is None else torch.as_tensor(lam, dtype=torch.float32)
    on_device: dict = {}  # one copy per device the layers live on, not one per layer
    for layer in layers:
        device = next(iter(layer.lora_A.values())).device
        if lam is not None and device not in on_device:
            on_device[device] = lam.to(device)
        layer.set_preference(None if lam is None else on_device[device])


def merge_preference(model, lam):
    """A plain ``transformers`` model with W0 + dW(lambda) written into its weights, for export at one fixed
    preference (``model`` is consumed: PEFT's ``merge_and_unload``)."""
    lam = torch.as_tensor(lam, dtype=torch.float32)
    if lam.ndim != 1:
        raise ValueError(f"merge_preference needs one preference vector, got shape {tuple(lam.shape)}")
    set_preference(model, lam)
    return model.merge_and_unload()


def svd_lora_config(spec: SVDLoraSpec, *, rank: int, alpha: float, dropout: float = 0.0,
                    target_modules: list[str] | str | None = None, task_type: str = "CAUSAL_LM"):
    """A ``peft.LoraConfig`` whose ``nn.Linear`` targets become :class:`PanaceaLinear` layers.

    ``rank`` is k, the preference-agnostic singular values; PEFT's ``r`` holds k + m.
    """
    from peft import LoraConfig

    if rank < 0:
        raise ValueError(f"rank={rank}: the number of preference-agnostic singular values must be >= 0")
    config = LoraConfig(r=rank + spec.n_preferences, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=target_modules, task_type=task_type)
    return _hosted(config, spec)


def _hosted(config, spec: SVDLoraSpec):
    """``config`` with :class:`PanaceaLinear` registered for its ``nn.Linear`` targets (not serialised by PEFT)."""
    config._register_custom_module({nn.Linear: partial(PanaceaLinear, spec=spec)})
    return config


def save_spec(spec: SVDLoraSpec, folder: str | Path) -> None:
    (Path(folder) / CONFIG_FILE).write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")


def is_svd_lora_dir(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def peft_config_for(folder: str | Path):
    """The registered ``LoraConfig`` of a saved SVD-LoRA folder (``PeftModel.from_pretrained(config=...)``)."""
    from peft import LoraConfig

    spec = SVDLoraSpec(**json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8")))
    return _hosted(LoraConfig.from_pretrained(str(folder)), spec)


def load_peft_folder(base, folder: str | Path, *, trainable: bool = False):
    """``PeftModel.from_pretrained`` of a saved adapter folder, with :class:`PanaceaLinear` registered first when
    the folder holds an SVD-LoRA (plain LoRA folders load as PEFT loads them)."""
    from peft import PeftModel

    config = peft_config_for(folder) if is_svd_lora_dir(folder) else None
    return PeftModel.from_pretrained(base, str(folder), config=config, is_trainable=trainable)
