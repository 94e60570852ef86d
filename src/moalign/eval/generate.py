"""Batched, seeded sampling: prompts in, response texts out (prompt stripped, cut at stop strings).

Prompts are tokenised as training tokenises them: TRL's SFT and the preference collator call the tokenizer
with its special tokens, so a tokenizer that adds BOS (Llama-2) starts every prompt with BOS here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moalign import distributed
from moalign.config import GenerationSettings, ModelConfig
from moalign.eval.prompt_tokens import cut_at_stop_strings, encode_prompts

__all__ = ["cut_at_stop_strings", "encode_prompts", "generate", "generate_from_dir", "left_pad"]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of rows padded on the left (the continuation starts at one column)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings | None = None,
    seed: int = 0,
    progress: bool = False,
    generate_fn=None,
    batch_starts: Sequence[int] | None = None,
    sharded: bool = False,
    **overrides,
) -> list[str] | None:
    """Sample one response per prompt (with ``batch_starts``: the prompts of those batches only, in order).

    ``sharded``: under a multi-process launch every rank must call this; each decodes its share of the
    batches, and the main rank gets every response in order, the other ranks None (in one process: all).

    ``generate_fn`` (a :class:`~moalign.eval.family.Policy`'s ``generate``) replaces ``model.generate``: it is
    called with the same keyword arguments plus ``stop_strings`` (it may end a row at one: the text is cut
    there anyway) and returns prompt + response ids as ``model.generate`` does.

    The generator is reseeded from ``seed`` for every batch index, so the output for a prompt depends only on
    its position and the seed, not on what ran before: a resumed evaluation reproduces an uninterrupted one.
    Prompts are tokenised by :func:`encode_prompts` (as training does) and padded on the left. A batch is
    the same prompts with the same seed whichever ``batch_starts`` select it, so batches dealt out to several
    processes and joined give the one-process result.
    """
    settings = settings or GenerationSettings()
    unknown = [key for key in overrides if not hasattr(settings, key)]
    if unknown:
        raise ValueError(f"unknown generation setting(s) {unknown}; valid: {sorted(settings.__dict__)}")
    params = {**settings.__dict__, **overrides}
    if params["backend"] != "hf":
        raise ValueError(f"generation.backend={params['backend']!r} decodes a model saved as a folder, and this "
                         "policy exists only in memory (a soup, MOD's experts, Panacea's preference-scaled "
                         "adapter, SIPO's samplers): set generation.backend=hf for it")
    if sharded:
        size = params["batch_size"]
        starts = distributed.block_starts(len(prompts), size)
        texts = generate(model, tokenizer, prompts, settings, seed, progress, generate_fn, starts, **overrides)
        return distributed.gather_blocks({s: texts[i * size:(i + 1) * size] for i, s in enumerate(starts)})
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    outputs: list[str] = []
    batches = range(0, len(prompts), params["batch_size"]) if batch_starts is None else list(batch_starts)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    for start in batches:
        batch = list(prompts[start : start + params["batch_size"]])
        torch.manual_seed(seed * 1_000_003 + start)
        enc = {k: v.to(device) for k, v in left_pad(encode_prompts(tokenizer, batch), pad_id).items()}
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
        if generate_fn is None:
            out = model.generate(**enc, **gen_kwargs)
        else:
            out = generate_fn(**enc, **gen_kwargs, stop_strings=list(params["stop_strings"]))
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        outputs.extend(cut_at_stop_strings(t, params["stop_strings"]) for t in texts)
    return outputs


def generate_from_dir(
    model_dir: str, prompts: Sequence[str], settings: GenerationSettings | None = None, seed: int = 0, *,
    model_config: ModelConfig | None = None, progress: bool = True, sharded: bool = False,
) -> list[str] | None:
    """Load a saved model or adapter folder (:func:`moalign.models.load.load_policy`, with ``model_config``'s
    dtype and ``trust_remote_code``) and sample one response per prompt with :func:`generate`; what methods
    call to generate from a model that an earlier stage saved (``sharded``: see :func:`generate`). With
    ``settings.backend == "vllm"`` vLLM decodes the folder instead (:mod:`moalign.eval.vllm_generate`)."""
    from moalign.models.load import load_policy, load_policy_tokenizer

    options = model_config or ModelConfig()
    settings = settings or GenerationSettings()
    if settings.backend == "vllm":
        from moalign.eval.vllm_generate import vllm_generate

        tokenizer = load_policy_tokenizer(model_dir, trust_remote_code=options.trust_remote_code)
        return vllm_generate(model_dir, tokenizer, prompts, settings, seed, dtype=options.dtype,
                             trust_remote_code=options.trust_remote_code, sharded=sharded)
    model, tokenizer = load_policy(model_dir, dtype=options.dtype, trust_remote_code=options.trust_remote_code)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return generate(model, tokenizer, prompts, settings, seed=seed, progress=progress, sharded=sharded)
