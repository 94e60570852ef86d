"""Generation with vLLM (``generation.backend: vllm``): the same prompts, settings and stop rules as
:func:`moalign.eval.generate.generate`, decoded by vLLM's engine from a model saved as a folder.

What it decodes: a full checkpoint folder (or a Hub id), or a plain PEFT LoRA adapter folder (vLLM loads the
base once and applies each adapter per request, so a sweep over LoRA checkpoints keeps one engine). Models that
exist only in memory (Panacea's preference-scaled SVD-LoRA, a soup, MOD's K experts) have no folder vLLM could
read: their families decode with ``backend: hf``, and asking for vLLM there is an error that says so.

Seeds: every prompt has its own sampling seed (``seed * 1_000_003 + its index``), so a prompt's response does
not depend on its neighbours, its batch or the rank it was dealt to: a launch's gathered responses equal one
process's. They are vLLM's samples, not HF ``generate``'s: the two backends draw different random numbers.

Under a multi-process launch every rank holds its own engine on its own GPU (data parallel, as TRL's colocated
vLLM with ``tensor_parallel_size=1``: ``distributed_executor_backend="external_launcher"``) and decodes every
W-th prompt; the main rank gathers the responses in order.
"""

from __future__ import annotations

import gc
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moalign import distributed
from moalign.config import GenerationSettings, vllm_unavailable_reason
from moalign.eval.prompt_tokens import cut_at_stop_strings, encode_prompts

__all__ = ["vllm_unavailable_reason", "vllm_generate", "prompt_seed", "sampling_kwargs", "vllm_model"]

PROMPT_SEED_STRIDE = 1_000_003  # the prompt seed is seed * stride + index (as HF generate's batch seeds)
# vLLM's accepted ``max_lora_rank`` values [INF: vLLM's list of supported ranks]; an adapter's rank is rounded up
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def prompt_seed(seed: int, index: int) -> int:
    """The sampling seed of the prompt at ``index``: a function of the run's seed and the index only."""
    return (int(seed) * PROMPT_SEED_STRIDE + int(index)) % (2**63)


def sampling_kwargs(settings: GenerationSettings, eos_token_id: int | None) -> dict:
    """``vllm.SamplingParams`` keyword arguments equivalent to the HF decoding of ``settings`` (without the
    per-prompt seed): greedy is temperature 0; top-k 0 ("off" here) is vLLM's -1; ``forbid_eos_first`` is one
    minimum new token; the stop strings end the sampling early (the text is cut at them anyway)."""
    kwargs = {"n": 1, "max_tokens": settings.max_new_tokens, "stop": list(settings.stop_strings),
              "skip_special_tokens": True}
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or -1)
    else:
        kwargs.update(temperature=0.0, top_p=1.0, top_k=-1)
    if settings.forbid_eos_first and eos_token_id is not None:
        kwargs["min_tokens"] = 1
    return kwargs


@dataclass(frozen=True)
class VLLMModel:
    """What the engine loads (``base``: a model folder or Hub id) and, for a LoRA adapter folder, the adapter
    applied per request and its rank."""

    base: str
    adapter: str | None = None
    rank: int = 0


def vllm_model(model_dir: str | Path) -> VLLMModel:
    """The engine's model for a saved folder; a clear error for an adapter vLLM cannot apply."""
    from moalign.models.load import is_adapter_dir, resolve_model_path
    from moalign.models.svd_lora import is_svd_lora_dir

    folder = str(model_dir)
    if not is_adapter_dir(folder):
        return VLLMModel(base=resolve_model_path(folder))
    config = json.loads((Path(folder) / "adapter_config.json").read_text())
    if is_svd_lora_dir(folder) or config.get("peft_type") != "LORA":
        raise ValueError(f"{folder}: generation.backend=vllm applies plain LoRA adapters only; this one is "
                         f"{config.get('peft_type')!r}{' (SVD-LoRA)' if is_svd_lora_dir(folder) else ''}; "
                         "set generation.backend=hf")
    if config.get("modules_to_save"):
        raise ValueError(f"{folder}: the adapter saves whole modules {config['modules_to_save']}, which vLLM's LoRA "
                         "cannot apply; set generation.backend=hf (or train with merged weights)")
    return VLLMModel(base=resolve_model_path(config["base_model_name_or_path"]), adapter=folder,
                     rank=int(config.get("r", 8)))


def engine_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ValueError(f"a LoRA rank of {rank} is above vLLM's largest ({VLLM_LORA_RANKS[-1]}); set generation.backend=hf")


class _Engines:
    """One vLLM engine at a time, kept while the next request wants the same one (a sweep over LoRA adapters
    of one base reuses it); a different one frees the old first (two engines would not fit beside each other
    in ``vllm_gpu_memory_utilization``)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.llm = None

    def get(self, key: tuple, build):
        if self.key != key:
            self.close()
            self.llm, self.key = build(), key
        return self.llm

    def close(self) -> None:
        if self.llm is None:
            return
        self.llm, self.key = None, None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


ENGINES = _Engines()


def _build_engine(model: VLLMModel, tokenizer_path: str, settings: GenerationSettings, dtype: str,
                  trust_remote_code: bool, max_rank: int):
    from vllm import LLM

    kwargs = {"model": model.base, "tokenizer": tokenizer_path, "dtype": dtype, "seed": 0,
              "trust_remote_code": trust_remote_code, "gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
              "tensor_parallel_size": 1}
    if settings.vllm_max_model_len is not None:
        kwargs["max_model_len"] = settings.vllm_max_model_len
    if max_rank:
        kwargs.update(enable_lora=True, max_lora_rank=max_rank, max_loras=1)
    if distributed.world_size() > 1:  # one engine per rank inside the launch's own processes (TRL's colocate mode)
        kwargs["distributed_executor_backend"] = "external_launcher"
    return LLM(**kwargs)


def vllm_generate(model_dir: str | Path, tokenizer, prompts: Sequence[str], settings: GenerationSettings,
                  seed: int = 0, *, dtype: str = "float32", trust_remote_code: bool = False,
                  sharded: bool = False) -> list[str] | None:
    """One response per prompt from the model saved in ``model_dir``, decoded by vLLM; ``tokenizer`` is the
    policy's (prompts are tokenised by :func:`~moalign.eval.generate.encode_prompts`, as training does).

    ``sharded``: under a launch every rank must call this; each decodes every W-th prompt and the main rank
    gets every response in order, the others None (in one process: all)."""
    reason = vllm_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"generation.backend=vllm: {reason}; set generation.backend=hf")
    model = vllm_model(model_dir)
    _check_vocabulary(model, tokenizer, trust_remote_code)
    tokenizer_path = str(model_dir) if (Path(model_dir) / "tokenizer_config.json").is_file() else model.base
    max_rank = engine_rank(model.rank) if model.adapter else 0
    key = (model.base, tokenizer_path, dtype, trust_remote_code, max_rank, settings.vllm_gpu_memory_utilization,
           settings.vllm_max_model_len)
    llm = ENGINES.get(key, lambda: _build_engine(model, tokenizer_path, settings, dtype, trust_remote_code, max_rank))
    token_ids = encode_prompts(tokenizer, prompts)
    base_kwargs = sampling_kwargs(settings, tokenizer.eos_token_id)

    def decode(indices: list[int]) -> list[str]:
        from vllm import SamplingParams

        params = [SamplingParams(**base_kwargs, seed=prompt_seed(seed, i)) for i in indices]
        requests = [{"prompt_token_ids": token_ids[i]} for i in indices]
        outputs = llm.generate(requests, params, lora_request=_lora_request(model), use_tqdm=False)
        return [cut_at_stop_strings(out.outputs[0].text, settings.stop_strings) for out in outputs]

    if sharded:
        return distributed.map_blocks(len(prompts), 1, decode)
    return decode(list(range(len(prompts))))


def _lora_request(model: VLLMModel):
    if model.adapter is None:
        return None
    from vllm.lora.request import LoRARequest

    # the id names the adapter in vLLM's cache: one per folder, the same in every process
    return LoRARequest(lora_name=Path(model.adapter).name, lora_int_id=1 + zlib.crc32(model.adapter.encode()) % (2**31 - 2),
                       lora_path=model.adapter)


def _check_vocabulary(model: VLLMModel, tokenizer, trust_remote_code: bool) -> None:
    """An adapter trained with added tokens (a resized embedding) cannot be applied by vLLM's LoRA."""
    if model.adapter is None:
        return
    from transformers import AutoConfig

    vocab = getattr(AutoConfig.from_pretrained(model.base, trust_remote_code=trust_remote_code), "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise ValueError(f"{model.adapter}: its tokenizer has {len(tokenizer)} tokens, the base {model.base!r} "
                         f"{vocab}: vLLM's LoRA cannot apply an adapter with added tokens; set generation.backend=hf")
