"""Loading base models, tokenizers and adapters through the real ``from_pretrained`` code path.

A Hugging Face id, a local folder and the built-in ``"embedded"`` model all go through the same calls; weights
load as safetensors, and remote code runs only when the user turns ``trust_remote_code`` on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from moalign.hub import check_hub_source

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(name_or_path: str) -> str:
    """``"embedded"`` -> the folder of the built-in tiny model (built offline on first use); else unchanged."""
    if name_or_path == "embedded":
        from moalign.models.tiny import ensure_tiny_model

        return str(ensure_tiny_model())
    return name_or_path


def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False):
    """A tokenizer with a pad token and left padding (generation pads on the left)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    check_hub_source(path, what="tokenizer", setting="model.name_or_path", revision=revision)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_causal_lm(
    name_or_path: str,
    revision: str | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
):
    """A causal LM in eval mode, from safetensors only."""
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"model.dtype={dtype!r}: choose one of {sorted(DTYPES)}")
    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype], "use_safetensors": True, "trust_remote_code": trust_remote_code}
    if revision:
        kwargs["revision"] = revision
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    path = resolve_model_path(name_or_path)
    check_hub_source(path, what="model", setting="model.name_or_path", revision=revision)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.eval()
    return model


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_policy_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The tokenizer of :func:`load_policy`'s policy, without its model: the folder's own, or for an adapter
    folder without one, its base model's."""
    path = str(path)
    if is_adapter_dir(path) and not (Path(path) / "tokenizer_config.json").is_file():
        path = json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]
    return load_tokenizer(path, trust_remote_code=trust_remote_code)


def load_policy(path: str | Path, dtype: str = "float32", trust_remote_code: bool = False):
    """(model, tokenizer) from a full checkpoint folder or a PEFT adapter folder (base named in its config).

    An adapter folder's base may itself be ``"embedded"``; the tokenizer is read from the adapter folder when
    it holds one (methods that add tokens, like RiC, save it there), else from the base.
    """
    path = str(path)
    tokenizer = load_policy_tokenizer(path, trust_remote_code=trust_remote_code)
    return load_policy_model(path, len(tokenizer), dtype=dtype, trust_remote_code=trust_remote_code), tokenizer


def load_policy_model(path: str | Path, vocab_size: int, dtype: str = "float32", trust_remote_code: bool = False):
    """The model of :func:`load_policy` alone; an adapter's base is resized to the policy's ``vocab_size``
    (``len`` of its tokenizer) when the adapter's training added tokens."""
    path = str(path)
    if not is_adapter_dir(path):
        return load_causal_lm(path, dtype=dtype, trust_remote_code=trust_remote_code)
    base_name = json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = load_causal_lm(base_name, dtype=dtype, trust_remote_code=trust_remote_code)
    if vocab_size > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(vocab_size)
    from moalign.models.svd_lora import load_peft_folder  # imports peft; knows Panacea's SVD-LoRA folders

    model = load_peft_folder(base, path)
    model.eval()
    return model
