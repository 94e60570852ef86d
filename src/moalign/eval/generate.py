"""Batched, seeded sampling: prompts in, response texts out (prompt stripped, cut at stop strings)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moalign.config import GenerationSettings, ModelConfig


def cut_at_stop_strings(text: str, stop_strings: Sequence[str]) -> str:
    """The text up to the first occurrence of any stop string (RiC/MORLHF's cleaning rule), stripped."""
    cut = len(text)
    for stop in stop_strings:
        pos = text.find(stop)
        if 0 <= pos < cut:
            cut = pos
    return text[:cut].strip()


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings | None = None,
    seed: int = 0,
    progress: bool = False,
    **overrides,
) -> list[str]:
    """Sample one response per prompt.

    The generator is reseeded from ``seed`` for every batch index, so the output for a prompt depends only on
    its position and the seed, not on what ran before: a resumed evaluation reproduces an uninterrupted one.
    """
    settings = settings or GenerationSettings()
    unknown = [key for key in overrides if not hasattr(settings, key)]
    if unknown:
        raise ValueError(f"unknown generation setting(s) {unknown}; valid: {sorted(settings.__dict__)}")
    params = {**settings.__dict__, **overrides}
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    outputs: list[str] = []
    batches = range(0, len(prompts), params["batch_size"])
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    for start in batches:
        batch = list(prompts[start : start + params["batch_size"]])
        torch.manual_seed(seed * 1_000_003 + start)
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        gen_kwargs = {
            "max_new_tokens": params["max_new_tokens"],
            "do_sample": params["do_sample"],
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        if params["do_sample"]:
            gen_kwargs.update(temperature=params["temperature"], top_p=params["top_p"], top_k=params["top_k"])  # 0 turns top-k off
        if params["forbid_eos_first"] and tokenizer.eos_token_id is not None:
            gen_kwargs["min_new_tokens"] = 1
        out = model.generate(**enc, **gen_kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        outputs.extend(cut_at_stop_strings(t, params["stop_strings"]) for t in texts)
    return outputs


def generate_from_dir(
    model_dir: str, prompts: Sequence[str], settings: GenerationSettings | None = None, seed: int = 0, *,
    model_config: ModelConfig | None = None, progress: bool = True,
) -> list[str]:
    """Load a saved model or adapter folder (:func:`moalign.models.load.load_policy`, with ``model_config``'s
    dtype and ``trust_remote_code``) and sample one response per prompt with :func:`generate`; what methods
    call to generate from a model that an earlier stage saved."""
    from moalign.models.load import load_policy

    options = model_config or ModelConfig()
    model, tokenizer = load_policy(model_dir, dtype=options.dtype, trust_remote_code=options.trust_remote_code)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return generate(model, tokenizer, prompts, settings, seed=seed, progress=progress)
