"""The two text rules every decoding backend shares: how a prompt becomes token ids (as training tokenises
it: the tokenizer's special tokens, BOS for Llama-2, less any it appends after the text) and where a response
ends (the first stop string). HF ``generate`` (:mod:`moalign.eval.generate`) and vLLM
(:mod:`moalign.eval.vllm_generate`) both use them, so the two backends see the same prompts."""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop_strings(text: str, stop_strings: Sequence[str]) -> str:
    """The text up to the first occurrence of any stop string (RiC/MORLHF's cleaning rule), stripped."""
    cut = len(text)
    for stop in stop_strings:
        pos = text.find(stop)
        if 0 <= pos < cut:
            cut = pos
    return text[:cut].strip()


def _special_suffix(tokenizer) -> list[int]:
    """The special tokens the tokenizer appends after a text (``[eos]`` for some, usually none)."""
    probe = "a"
    full = list(tokenizer(probe)["input_ids"])
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[start + len(plain) :]
    return []


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Each prompt's token ids exactly as training starts the sequence: ``tokenizer(prompt)`` with the
    tokenizer's special tokens (BOS for Llama-2), less any it appends after the text (an EOS would end the
    prompt before the response starts)."""
    suffix = _special_suffix(tokenizer)
    out = []
    for ids in tokenizer(list(prompts))["input_ids"]:
        ids = list(ids)
        if suffix and ids[-len(suffix) :] == suffix:
            ids = ids[: -len(suffix)]
        out.append(ids)
    return out
