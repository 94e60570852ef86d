"""Summed response log-probabilities: the quantity every DPO-style loss is written in.

A preference pair becomes two rows, ``prompt + chosen`` and ``prompt + rejected``; the prompt tokens and the
padding carry the label -100, so that only response tokens count. The log-probability of a response is the
**sum** over its tokens (spec section 11: implicit rewards are summed, never averaged); the number of
response tokens travels with it, so a length-normalised loss (mean NLL per token) can be written from the
same record. Chosen and rejected rows go through the model in one concatenated forward, so a step costs one
forward per objective.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities of ``labels`` under ``logits`` (causal shift applied), 0 where ignored.

    ``logits`` is (B, T, V) and ``labels`` (B, T); the result is (B, T-1). ``cross_entropy`` with
    ``reduction="none"`` is used rather than a full ``log_softmax`` so that no second (B, T, V) tensor is kept
    for the backward pass (this matters at vocabulary sizes of 10^5).
    """
    shifted_logits = logits[:, :-1, :]
    shifted_labels = labels[:, 1:]
    if shifted_logits.dtype in (torch.float16, torch.bfloat16):
        shifted_logits = shifted_logits.float()
    flat = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return -flat.view(shifted_labels.shape)


def sequence_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of the labelled (response) tokens of each row: shape (B,)."""
    outputs = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return token_logps(outputs.logits, labels).sum(dim=-1)


def response_token_counts(labels: torch.Tensor) -> torch.Tensor:
    """Number of scored (response) tokens of each row, shape (B,): the labels that are not -100 after the
    causal shift, i.e. exactly the tokens :func:`sequence_logps` sums over."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(dim=-1)


class ResponseLogps(NamedTuple):
    """Summed log-probs of the B chosen and the B rejected responses of a pair batch, and their token counts."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor


def pair_logps(model, batch: dict) -> ResponseLogps:
    """Summed log-probs (and token counts) of a collated pair batch, in one concatenated forward.

    ``batch`` holds ``input_ids``, ``attention_mask`` and ``labels`` of 2B rows: the B chosen rows first, then
    the B rejected rows in the same order (see :mod:`moalign.train.collate`).
    """
    logps = sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    counts = response_token_counts(batch["labels"])
    half = logps.shape[0] // 2
    return ResponseLogps(logps[:half], logps[half:], counts[:half], counts[half:])


def response_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs (B,) and token counts (B,) of a collated batch of B responses alone (SFT rows)."""
    logps = sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    return logps, response_token_counts(batch["labels"])
