"""The frozen reference policy of DPO-style losses, three interchangeable ways.

* ``"model"``: a separate frozen model (any model with the same tokenizer), run under ``no_grad``.
* ``"adapter"``: the policy itself with its adapter switched off (MODPO/SIPO's way: no second copy), through
  the :class:`~moalign.models.adapters.Adapter` protocol (LoRA by default).
* ``"precomputed"``: log-probs computed once before training (from either source) and stored as the
  dataset columns ``ref_chosen`` / ``ref_rejected``; the step then needs no reference forward at all.

All three give the same loss (tests/train/test_preference.py checks it).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from tqdm.auto import tqdm

from moalign import distributed
from moalign.config import ModelConfig
from moalign.models.adapters import LORA, Adapter, as_model_config, load_model, load_model_tokenizer
from moalign.models.load import load_policy
from moalign.train.collate import (
    REF_COLUMNS,
    PreferenceDataset,
    build_preference_dataset,
    build_response_dataset,
    collate_objective,
    collate_responses,
)
from moalign.train.logps import pair_logps, response_logps

REFERENCE_MODES = ("precomputed", "model", "adapter")


def check_reference_mode(mode: str) -> str:
    if mode not in REFERENCE_MODES:
        raise ValueError(f"reference={mode!r}: choose one of {', '.join(REFERENCE_MODES)}")
    return mode


@contextlib.contextmanager
def frozen_eval(model):
    """Eval mode and no gradients for the duration; the training flag is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def reference_pair_logps(batch: dict, policy, ref_model=None, mode: str = "precomputed", adapter: Adapter = LORA):
    """(ref_chosen, ref_rejected) for a collated sub-batch under ``mode``."""
    if mode == "precomputed":
        missing = [c for c in REF_COLUMNS if c not in batch]
        if missing:
            raise KeyError(f"reference='precomputed' but the batch has no {missing}; call precompute_reference first")
        return batch["ref_chosen"], batch["ref_rejected"]
    if mode == "model":
        if ref_model is None:
            raise ValueError("reference='model' needs a ref_model")
        with torch.no_grad():
            out = pair_logps(ref_model, batch)
    else:
        with torch.no_grad(), adapter.disabled(policy):
            out = pair_logps(policy, batch)
    return out.chosen, out.rejected


def dataset_pair_logps(model, dataset: PreferenceDataset, k: int, pad_id: int, batch_size: int = 16,
                       sharded: bool = False) -> np.ndarray | None:
    """(n_k, 2) summed log-probs (chosen, rejected) of every pair of objective k under ``model`` (eval mode).

    ``sharded``: under a launch every rank must call this; each computes its share of the pairs in whole
    batches (the same numbers as one process) and the main rank gets the array, the others None."""
    rows = dataset.rows[k]
    desc = f"log-probs {dataset.objectives[k]}"
    if not sharded:
        return _rows_pair_logps(model, rows, pad_id, batch_size, desc)

    def share(indices: list[int]) -> list:
        return list(_rows_pair_logps(model, [rows[i] for i in indices], pad_id, batch_size, desc))

    gathered = distributed.map_blocks(len(rows), batch_size, share)
    return None if gathered is None else np.asarray(gathered, dtype=np.float64).reshape(len(rows), 2)


def _rows_pair_logps(model, rows: list, pad_id: int, batch_size: int, desc: str) -> np.ndarray:
    device = next(model.parameters()).device
    out = []
    with frozen_eval(model):
        for start in tqdm(range(0, len(rows), batch_size), desc=desc, leave=False):
            batch = collate_objective(rows[start : start + batch_size], pad_id)
            batch = {name: t.to(device) for name, t in batch.items()}
            logps = pair_logps(model, batch)
            out.append(torch.stack([logps.chosen, logps.rejected], dim=1).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 2))


def texts_logps(model, tokenizer, prompts, responses, max_length: int, batch_size: int = 16) -> np.ndarray:
    """(n,) summed log-probs of each response given its prompt under ``model``, tokenised exactly as training
    tokenises responses (same join, EOS and ``max_length`` truncation): DPO's implicit reward
    beta * (log pi - log ref) of texts that are not pairs (SIPO's candidates) is two calls of this."""
    from moalign.data.schema import ScoredSet

    texts = ScoredSet(list(prompts), list(responses), np.zeros((len(prompts), 0)), [])
    rows = build_response_dataset(tokenizer, {"texts": texts}, max_length, seed=0).rows[0] if len(texts.prompts) else []
    device, pad_id, out = next(model.parameters()).device, pad_id_of(tokenizer), []
    with frozen_eval(model):
        for start in tqdm(range(0, len(rows), batch_size), desc="log-probs", leave=False):
            batch = {k: t.to(device) for k, t in collate_responses(rows[start : start + batch_size], pad_id).items()}
            out.append(response_logps(model, batch)[0].double().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def precompute_reference(
    dataset: PreferenceDataset, pad_id: int, policy=None, ref_model=None, source: str = "model", batch_size: int = 16,
    adapter: Adapter = LORA,
) -> None:
    """Fill the ``ref_chosen`` / ``ref_rejected`` columns once, from ``ref_model`` or the adapter-free policy."""
    if source == "model":
        if ref_model is None:
            raise ValueError("precompute_reference(source='model') needs ref_model")
        context, model = contextlib.nullcontext(), ref_model
    elif source == "adapter":
        context, model = adapter.disabled(policy), policy
    else:
        raise ValueError(f"source={source!r}: the reference is precomputed from 'model' or 'adapter'")
    with context:
        for k in range(len(dataset.objectives)):
            logps = dataset_pair_logps(model, dataset, k, pad_id, batch_size)
            dataset.set_column(k, "ref_chosen", logps[:, 0])
            dataset.set_column(k, "ref_rejected", logps[:, 1])


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def implicit_reward_margins(model_dir, base: ModelConfig, pairs, *, beta: float, max_length: int,
                            adapter: Adapter = LORA, sharded: bool = False) -> np.ndarray | None:
    """beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))] per pair, shape (n,).

    ``model_dir`` is a trained DPO model (a saved adapter: its reference is the same model with the adapter
    off; a full model: its reference is the ``base`` model). This is the difference of DPO's implicit
    rewards between the chosen and the rejected response: MODPO's margin from a frozen DPO model.
    ``sharded``: see :func:`dataset_pair_logps` (None on the ranks other than the main one).
    """
    model, tokenizer = load_policy(model_dir, dtype=base.dtype, trust_remote_code=base.trust_remote_code)
    model = _on_accelerator(model)
    dataset = build_preference_dataset(tokenizer, {"margin": pairs}, max_length, seed=0)
    logps = dataset_pair_logps(model, dataset, 0, pad_id_of(tokenizer), sharded=sharded)
    if adapter.is_saved(model_dir):
        with adapter.disabled(model):
            ref = dataset_pair_logps(model, dataset, 0, pad_id_of(tokenizer), sharded=sharded)
    else:
        del model
        ref = dataset_pair_logps(_on_accelerator(load_model(base)[0]), dataset, 0, pad_id_of(tokenizer),
                                 sharded=sharded)
    if logps is None:
        return None
    return beta * ((logps[:, 0] - ref[:, 0]) - (logps[:, 1] - ref[:, 1]))


def pairset_reference_logps(model, pairsets, max_length: int, sharded: bool = False) -> dict[str, np.ndarray] | None:
    """(n_k, 2) reference log-probs (chosen, rejected) of every objective's pairs under the base model.

    ``model`` is a :class:`moalign.config.ModelConfig` (or a name/folder). The tokenisation is the trainer's
    (same ``max_length``), so the arrays can be cached once per run and handed to every model trained on these
    pairs as the ``ref_chosen`` / ``ref_rejected`` columns. ``sharded``: see :func:`dataset_pair_logps` (None
    on the ranks other than the main one).
    """
    config = as_model_config(model)
    lm, tokenizer = _on_accelerator(load_model(config)[0]), load_model_tokenizer(config)
    dataset = build_preference_dataset(tokenizer, pairsets, max_length, seed=0)
    arrays = {name: dataset_pair_logps(lm, dataset, k, pad_id_of(tokenizer), sharded=sharded)
              for k, name in enumerate(dataset.objectives)}
    return None if any(a is None for a in arrays.values()) else arrays


def _on_accelerator(model):
    """``model`` on this process's GPU when there is one (a launch has set each rank's device)."""
    return model.to("cuda") if torch.cuda.is_available() else model
