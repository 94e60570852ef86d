"""MOD decoding (Shi et al., NeurIPS 2024): next-token scores combine K experts' log-probs for a preference w.

Each step scores every vocabulary token v by an f-divergence rule over the experts' log-probs l_i(v)
(:func:`combine_scores`), then picks the argmax (greedy) or samples from the softmax of the scores (temperature,
top-k, top-p: the warpers ``transformers.generate`` uses):

* ``reverse_kl``:  s(v) = sum_i w_i l_i(v)                               (a weighted geometric mean)
* ``forward_kl``:  s(v) = -log sum_i w_i exp(-l_i(v))                    (a weighted harmonic mean)
* ``alpha``:       s(v) = -(1/alpha) log sum_i w_i exp(-alpha l_i(v))    (alpha-divergence, alpha > 0)

With ``scores="cumulative"`` (the official srzer/MOD code) l_i(v) is expert i's summed log-prob of the response
so far plus its log-prob of v; with ``"per_token"`` it is the log-prob of v alone. Under reverse KL the two
give the same argmax and the same sampling distribution (the cumulative part is a constant per row).

Speed: K LoRA experts on one base run as one forward per token (:class:`LoraExperts`: the batch holds K copies
of each sequence, row r uses adapter r mod K through PEFT's per-sample ``adapter_names``) with one KV cache;
K full models (:class:`ModelExperts`) run K forwards per token, each with its own cache. Experts with w_i = 0
are not run at all, so a one-hot w decodes exactly as that expert alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

RULES = ("reverse_kl", "forward_kl", "alpha")
SCORE_MODES = ("cumulative", "per_token")


def check_rule(rule: str, alpha: float, scores: str) -> None:
    """A ValueError naming the bad option and the valid values."""
    if rule not in RULES:
        raise ValueError(f"rule={rule!r}: choose one of {list(RULES)}")
    if scores not in SCORE_MODES:
        raise ValueError(f"scores={scores!r}: choose one of {list(SCORE_MODES)}")
    if rule == "alpha" and not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha={alpha}: the alpha-divergence rule needs alpha > 0 (alpha -> 0 is rule=reverse_kl)")


def combine_scores(logps: torch.Tensor, weights: torch.Tensor, *, rule: str = "reverse_kl",
                   alpha: float = 0.5) -> torch.Tensor:
    """The MOD scores ``(..., V)`` of experts' log-probs ``logps`` ``(..., K, V)`` under preference ``weights``
    ``(K,)``; experts with weight 0 are left out (so 0 * -inf never appears and a one-hot w is that expert).

    ``alpha`` keeps the paper's 1/alpha factor (the official code drops it; the argmax is the same for
    alpha > 0, and with it a one-hot w samples exactly as the expert does). ``forward_kl`` is alpha = 1.
    """
    weights = torch.as_tensor(weights, dtype=logps.dtype, device=logps.device)
    keep = weights > 0
    logps, weights = logps[..., keep, :], weights[keep]
    if rule == "reverse_kl":
        return (weights[:, None] * logps).sum(dim=-2)
    a = 1.0 if rule == "forward_kl" else float(alpha)
    return -torch.logsumexp(torch.log(weights)[:, None] - a * logps, dim=-2) / a


def check_weights(weights: Sequence[float], k: int) -> torch.Tensor:
    """``weights`` as a float64 tensor: K non-negative values, at least one positive."""
    w = torch.as_tensor([float(x) for x in weights], dtype=torch.float64)
    if w.shape != (k,) or bool((w < 0).any()) or not bool((w > 0).any()) or not bool(torch.isfinite(w).all()):
        raise ValueError(f"MOD weights {list(weights)}: need {k} non-negative values (one per expert), not all 0")
    return w


class LoraExperts:
    """K LoRA adapters of one PEFT model, run as one batched forward: row b*K + i is sequence b under adapter
    ``names[i]``; one KV cache (a DynamicCache) holds every row."""

    def __init__(self, model, names: Sequence[str]) -> None:
        self.model, self.names, self.cache = model, list(names), None

    def __len__(self) -> int:
        return len(self.names)

    def reset(self) -> None:
        self.cache = None

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Last-position logits ``(B, K, V)`` of ``ids`` ``(B, L)`` appended to the cached prefix."""
        from transformers import DynamicCache

        k, batch = len(self.names), ids.shape[0]
        if self.cache is None:
            self.cache = DynamicCache()
        out = self.model(input_ids=ids.repeat_interleave(k, 0), attention_mask=mask.repeat_interleave(k, 0),
                         position_ids=positions.repeat_interleave(k, 0), past_key_values=self.cache, use_cache=True,
                         adapter_names=self.names * batch, logits_to_keep=1)
        self.cache = out.past_key_values
        return out.logits[:, -1].reshape(batch, k, -1)


class ModelExperts:
    """K experts run one after another on the same rows, each with its own KV cache: K full models, or K
    adapters of one PEFT model (``names``; the per-token baseline of the batched path)."""

    def __init__(self, models: Sequence, names: Sequence[str | None] | None = None) -> None:
        self.models = list(models)
        self.names = list(names) if names is not None else [None] * len(self.models)
        self.caches: list = [None] * len(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def reset(self) -> None:
        self.caches = [None] * len(self.models)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        from transformers import DynamicCache

        logits = []
        for i, (model, name) in enumerate(zip(self.models, self.names)):
            extra = {} if name is None else {"adapter_names": [name] * ids.shape[0]}
            cache = self.caches[i] if self.caches[i] is not None else DynamicCache()
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                        use_cache=True, logits_to_keep=1, **extra)
            self.caches[i] = out.past_key_values
            logits.append(out.logits[:, -1])
        return torch.stack(logits, dim=1)


def subset(experts, keep: Sequence[int]):
    """The experts at indices ``keep`` (a fresh runner: no cache)."""
    if isinstance(experts, LoraExperts):
        return LoraExperts(experts.model, [experts.names[i] for i in keep])
    return ModelExperts([experts.models[i] for i in keep], [experts.names[i] for i in keep])


def _warpers(do_sample: bool, temperature: float, top_k: int, top_p: float):
    """transformers' own temperature / top-k / top-p warpers, in generate's order (none for greedy)."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    if not do_sample:
        return []
    warpers = [TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers


def _stopped_by_strings(tokenizer, new_tokens: torch.Tensor, rows: torch.Tensor, stop_strings) -> torch.Tensor:
    """Which of ``rows`` (indices) now contain a stop string in their decoded response."""
    texts = tokenizer.batch_decode(new_tokens[rows], skip_special_tokens=True)
    return torch.tensor([any(s in t for s in stop_strings) for t in texts], dtype=torch.bool)


@torch.no_grad()
def mod_generate(
    experts, weights: Sequence[float], input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
    rule: str = "reverse_kl", alpha: float = 0.5, scores: str = "cumulative", max_new_tokens: int = 48,
    do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
    eos_token_id: int | None = None, pad_token_id: int | None = None, min_new_tokens: int = 0,
    stop_strings: Sequence[str] = (), tokenizer=None,
) -> torch.Tensor:
    """Prompt + response ids ``(B, L + T)``, as ``model.generate`` returns them, decoded by MOD.

    ``input_ids`` are left padded; positions are counted from each row's first real token, as ``generate``
    does. Finished rows (EOS, or a stop string when ``tokenizer`` is given) continue with pad tokens; decoding
    ends when every row is finished or after ``max_new_tokens``. Sampling draws one ``torch.multinomial`` per
    step over the whole batch, as ``generate`` does, so a one-hot w reproduces the expert's seeded samples.
    """
    check_rule(rule, alpha, scores)
    w = check_weights(weights, len(experts))
    keep = [i for i in range(len(experts)) if w[i] > 0]
    runner, w = subset(experts, keep), w[keep].float()
    warpers = _warpers(do_sample, temperature, top_k, top_p)
    pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
    device, batch = input_ids.device, input_ids.shape[0]
    mask = attention_mask.to(device)
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    logits = runner.forward(input_ids, mask, positions)
    cumulative = torch.zeros(batch, len(keep), device=device)
    unfinished = torch.ones(batch, dtype=torch.bool, device=device)
    new = input_ids.new_zeros(batch, 0)
    for step in range(max_new_tokens):
        logps = torch.log_softmax(logits.float(), dim=-1)
        total = logps + cumulative[..., None] if scores == "cumulative" else logps
        token_scores = combine_scores(total, w.to(device), rule=rule, alpha=alpha)
        if step < min_new_tokens and eos_token_id is not None:
            token_scores[:, eos_token_id] = -math.inf
        tokens = _pick(token_scores, do_sample, warpers, torch.cat([input_ids, new], dim=1))
        cumulative += logps.gather(-1, tokens[:, None, None].expand(-1, len(keep), 1))[..., 0]
        tokens = torch.where(unfinished, tokens, torch.full_like(tokens, pad))
        new = torch.cat([new, tokens[:, None]], dim=1)
        if eos_token_id is not None:
            unfinished &= tokens != eos_token_id
        if stop_strings and tokenizer is not None and bool(unfinished.any()):
            rows = unfinished.nonzero()[:, 0]
            unfinished[rows[_stopped_by_strings(tokenizer, new, rows.cpu(), stop_strings).to(device)]] = False
        if not bool(unfinished.any()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        positions = positions[:, -1:] + 1
        logits = runner.forward(tokens[:, None], mask, positions)
    return torch.cat([input_ids, new], dim=1)


def _pick(token_scores: torch.Tensor, do_sample: bool, warpers, ids: torch.Tensor) -> torch.Tensor:
    """The argmax (greedy), else one multinomial draw per row from the softmax of the warped scores."""
    if not do_sample:
        return token_scores.argmax(dim=-1)
    for warper in warpers:
        token_scores = warper(ids, token_scores)
    return torch.multinomial(torch.softmax(token_scores, dim=-1), num_samples=1)[:, 0]


# ----------------------------------------------------------------------------------------------------------
# Loading K saved experts
# ----------------------------------------------------------------------------------------------------------


def expert_names(k: int) -> list[str]:
    return [f"expert{i}" for i in range(k)]


def load_experts(paths: Sequence[str], *, dtype: str = "float32", batched: bool = True):
    """(experts, tokenizer, model) for K saved folders: LoRA adapters on one base load as one PEFT model with
    adapters ``expert0..`` (:class:`LoraExperts`, or :class:`ModelExperts` over the adapters when not
    ``batched``); full checkpoints load as K models (:class:`ModelExperts`). ``model`` is the one whose device
    the prompts go to. A mix, adapters on different bases, or SVD-LoRA adapters are refused."""
    from moalign.models.load import is_adapter_dir

    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("MOD needs at least one expert folder")
    kinds = {is_adapter_dir(p) for p in paths}
    if kinds == {True, False}:
        raise ValueError(f"MOD experts {paths} mix LoRA adapter folders and full checkpoints; train every expert "
                         "the same way (train.lora.r > 0 for all, or r = 0 for all)")
    if kinds == {True}:
        return _load_lora(paths, dtype, batched)
    return _load_full(paths, dtype)


def _load_lora(paths: list[str], dtype: str, batched: bool):
    import json
    from pathlib import Path

    from peft import PeftModel

    from moalign.models.load import load_causal_lm, load_tokenizer
    from moalign.models.svd_lora import is_svd_lora_dir

    bases = [json.loads((Path(p) / "adapter_config.json").read_text())["base_model_name_or_path"] for p in paths]
    if len(set(bases)) > 1 or any(is_svd_lora_dir(p) for p in paths):
        raise ValueError(f"MOD's batched experts must be LoRA adapters of one base model; got bases {bases} for "
                         f"{paths} (SVD-LoRA adapters are refused too)")
    has_tokenizer = (Path(paths[0]) / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(paths[0] if has_tokenizer else bases[0])
    base = load_causal_lm(bases[0], dtype=dtype)
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(len(tokenizer))
    names = expert_names(len(paths))
    model = PeftModel.from_pretrained(base, paths[0], adapter_name=names[0])
    for name, path in zip(names[1:], paths[1:]):
        model.load_adapter(path, adapter_name=name)
    model.eval()
    experts = LoraExperts(model, names) if batched else ModelExperts([model] * len(names), names)
    return experts, tokenizer, model


def _load_full(paths: list[str], dtype: str):
    from moalign.models.load import load_causal_lm, load_tokenizer

    models = [load_causal_lm(p, dtype=dtype) for p in paths]
    vocab = {m.get_output_embeddings().weight.shape[0] for m in models}
    if len(vocab) > 1:
        raise ValueError(f"MOD experts {paths} have different vocabularies ({sorted(vocab)} tokens); MOD combines "
                         "next-token log-probs, so every expert must share one tokenizer")
    return ModelExperts(models), load_tokenizer(paths[0]), models[0]


def to_device(experts, device) -> None:
    """Move every expert's weights to ``device`` (a model shared by several adapters moves once)."""
    models = [experts.model] if isinstance(experts, LoraExperts) else experts.models
    for model in {id(m): m for m in models}.values():
        model.to(device)
