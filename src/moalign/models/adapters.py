"""Trainable adapters behind one small protocol, so the trainers never assume PEFT LoRA.

An :class:`Adapter` knows how to put a new trainable adapter on a base model, save and load it, and run the
adapted model as its base (the frozen reference of DPO-style losses: MODPO/SIPO's "adapter off" reference,
no second copy). :class:`LoraAdapter` is the PEFT LoRA implementation (``LORA``); :class:`SVDLoraAdapter`
is Panacea's SVD-LoRA; any other adapter plugs into the preference trainer by implementing the same seven
methods. :func:`load_model` (and :func:`load_model_tokenizer`) load what a :class:`~moalign.config.ModelConfig`
names: a base or merged model, or a saved adapter on its base.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from moalign.config import LoraSettings, ModelConfig, TrainSettings
from moalign.models.load import load_causal_lm, load_tokenizer

if TYPE_CHECKING:
    from moalign.models.svd_lora import SVDLoraSpec


@runtime_checkable
class Adapter(Protocol):
    """What a trainer needs from an adapter type."""

    name: str

    def build(self, model, settings: TrainSettings):
        """``model`` with a new trainable adapter, or ``model`` unchanged when ``settings`` ask for full
        fine-tuning."""

    def load(self, base, folder: str | Path, *, trainable: bool = False):
        """``base`` with the adapter saved in ``folder`` (trainable to continue training it)."""

    def save(self, model, folder: str | Path, *, base_name: str | None = None, state_dict=None) -> None:
        """Write the adapter (only) to ``folder``; ``base_name`` is recorded as its base. ``state_dict``: the
        full gathered state when training was sharded (ZeRO-3, FSDP)."""

    def disabled(self, model) -> AbstractContextManager:
        """A context in which ``model`` runs as its base model (an error for a model without the adapter)."""

    def is_attached(self, model) -> bool:
        """Whether ``model`` carries this adapter."""

    def is_saved(self, folder: str | Path) -> bool:
        """Whether ``folder`` holds a saved adapter of this type."""

    def base_name(self, folder: str | Path) -> str:
        """The base model a saved adapter was trained on, as its saver named it."""


def lora_config(settings: LoraSettings, task_type: str = "CAUSAL_LM"):
    """A ``peft.LoraConfig`` for ``settings``, or None when ``settings.r == 0`` (full fine-tuning)."""
    if settings.r <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type=task_type,
    )


class LoraAdapter:
    """PEFT LoRA (``settings.lora``; ``r = 0`` is full fine-tuning)."""

    name = "lora"
    CONFIG_FILE = "adapter_config.json"

    def build(self, model, settings: TrainSettings):
        config = lora_config(settings.lora)
        if config is None:
            return model
        from peft import get_peft_model

        return get_peft_model(model, config)

    def load(self, base, folder: str | Path, *, trainable: bool = False):
        from peft import PeftModel

        from moalign.models.svd_lora import is_svd_lora_dir  # imports peft

        if is_svd_lora_dir(folder):
            raise ValueError(f"{folder} holds an SVD-LoRA (Panacea) adapter, not a LoRA one: load it with "
                             "moalign.models.adapters.SVDLoraAdapter (or moalign.models.load.load_policy)")
        return PeftModel.from_pretrained(base, str(folder), is_trainable=trainable)

    def save(self, model, folder: str | Path, *, base_name: str | None = None, state_dict=None) -> None:
        model.save_pretrained(str(folder), state_dict=state_dict)
        if base_name is not None:
            path = Path(folder) / self.CONFIG_FILE
            config = json.loads(path.read_text(encoding="utf-8"))
            config["base_model_name_or_path"] = base_name
            path.write_text(json.dumps(config, indent=2), encoding="utf-8")

    def disabled(self, model) -> AbstractContextManager:
        if not self.is_attached(model):
            raise ValueError(
                "reference='adapter' needs a LoRA policy (train.lora.r > 0, or a saved adapter to start from); "
                "with full fine-tuning use reference='model' or 'precomputed'"
            )
        return model.disable_adapter()

    def is_attached(self, model) -> bool:
        return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")

    def peft_config(self, settings: TrainSettings):
        """The ``peft_config`` a TRL trainer takes to build this adapter itself (None: full fine-tuning), so
        that its reference is the adapter switched off rather than a copy (the online trainer)."""
        return lora_config(settings.lora)

    def is_saved(self, folder: str | Path) -> bool:
        return (Path(folder) / self.CONFIG_FILE).is_file()

    def base_name(self, folder: str | Path) -> str:
        return json.loads((Path(folder) / self.CONFIG_FILE).read_text(encoding="utf-8"))["base_model_name_or_path"]


LORA = LoraAdapter()


class SVDLoraAdapter(LoraAdapter):
    """Panacea's SVD-LoRA (:mod:`moalign.models.svd_lora`), hosted in PEFT as a LoRA custom module: saving,
    loading and the adapter-off reference are LoRA's; ``settings.lora.r`` is k, the preference-agnostic
    singular values, and ``spec`` adds the m preference ones."""

    name = "svd_lora"

    def __init__(self, spec: SVDLoraSpec) -> None:
        self.spec = spec

    def build(self, model, settings: TrainSettings):
        from peft import get_peft_model

        from moalign.models.svd_lora import svd_lora_config

        lora = settings.lora
        config = svd_lora_config(self.spec, rank=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                                 target_modules=lora.target_modules)
        return get_peft_model(model, config)

    def peft_config(self, settings: TrainSettings):
        """The registered ``LoraConfig`` that :meth:`build` applies (``settings.lora.r`` = k), for TRL's
        ``peft_config``."""
        from moalign.models.svd_lora import svd_lora_config

        lora = settings.lora
        return svd_lora_config(self.spec, rank=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                               target_modules=lora.target_modules)

    def load(self, base, folder: str | Path, *, trainable: bool = False):
        from moalign.models.svd_lora import CONFIG_FILE, load_peft_folder

        if not self.is_saved(folder):
            raise ValueError(f"{folder} holds no SVD-LoRA adapter (no {CONFIG_FILE} next to adapter_config.json)")
        return load_peft_folder(base, folder, trainable=trainable)

    def save(self, model, folder: str | Path, *, base_name: str | None = None, state_dict=None) -> None:
        from moalign.models.svd_lora import save_spec

        super().save(model, folder, base_name=base_name, state_dict=state_dict)
        save_spec(self.spec, folder)

    def is_saved(self, folder: str | Path) -> bool:
        from moalign.models.svd_lora import is_svd_lora_dir

        return super().is_saved(folder) and is_svd_lora_dir(folder)


def as_model_config(model: ModelConfig | str | Path) -> ModelConfig:
    """A ModelConfig as given, or one for a bare name / folder (default dtype, no remote code)."""
    return model if isinstance(model, ModelConfig) else ModelConfig(name_or_path=str(model))


def load_model(config: ModelConfig, adapter: Adapter = LORA, *, trainable: bool = False):
    """(model, base_name) for ``config.name_or_path``: a model name/folder, or a saved adapter folder (loaded
    on its base; ``trainable`` to continue training it). ``base_name`` is the base a new adapter should name:
    a saved adapter's own base, else the model as given."""
    path = config.name_or_path
    if not adapter.is_saved(path):
        model = load_causal_lm(path, revision=config.revision, dtype=config.dtype,
                               trust_remote_code=config.trust_remote_code,
                               attn_implementation=config.attn_implementation)
        return model, path
    base_name = adapter.base_name(path)
    base = load_causal_lm(base_name, dtype=config.dtype, trust_remote_code=config.trust_remote_code,
                          attn_implementation=config.attn_implementation)
    rows = len(load_model_tokenizer(config, adapter))
    if rows > base.get_input_embeddings().weight.shape[0]:  # tokens added before the adapter was saved
        base.resize_token_embeddings(rows)
    return adapter.load(base, path, trainable=trainable), base_name


def load_model_tokenizer(config: ModelConfig, adapter: Adapter = LORA):
    """The tokenizer of what ``config`` names; a saved adapter's own when its folder holds one (added
    tokens), else its base's."""
    path = config.name_or_path
    if not adapter.is_saved(path):
        return load_tokenizer(path, config.revision, config.trust_remote_code)
    has_tokenizer = (Path(path) / "tokenizer_config.json").is_file()
    return load_tokenizer(path if has_tokenizer else adapter.base_name(path), None, config.trust_remote_code)
