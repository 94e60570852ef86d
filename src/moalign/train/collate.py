"""Per-objective preference pairs (or responses) -> token ids, a step dataset and a collator.

One training item carries **one pair per objective** (K objectives -> K sub-batches per step), because
MGDA-style methods need each objective's loss on its own data in every step. Item ``i`` takes pair
``perm_k[i mod n_k]`` of objective k, where ``perm_k`` is a seeded permutation: objectives with fewer pairs
are cycled, and the Trainer's own sampler shuffles ``i``, so every pair is seen and the combinations vary.

Per-pair float columns (precomputed reference log-probs, MODPO margins) travel with the tokens, so the
reference can be computed once and cached with the dataset. :func:`build_preference_dataset` is the one way
from the run's pair sets to this dataset (the trainer, the reference cache and MODPO's margins all use it, so
they tokenise identically). Responses alone (SFT rows: Panacea's SFT variant) take the same road with one
row per item and objective instead of two: :func:`build_response_dataset` and :func:`collate_responses`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from moalign.data.schema import PairSet, ScoredSet
from moalign.train.logps import IGNORE_INDEX

REF_COLUMNS = ("ref_chosen", "ref_rejected")


def tokenize_response(tokenizer, prompt: str, response: str, max_length: int, add_eos: bool = True):
    """(input_ids, labels) for ``prompt + response``; prompt tokens get -100 so only the response is scored.

    The prompt and the response are tokenised separately (the response without special tokens) so that the
    boundary is exact. Over ``max_length`` the prompt loses tokens from its start (down to half the budget)
    and then the response loses tokens from its end.
    """
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    if add_eos and tokenizer.eos_token_id is not None:
        response_ids.append(tokenizer.eos_token_id)
    if len(prompt_ids) + len(response_ids) > max_length:
        keep_prompt = min(len(prompt_ids), max(max_length - len(response_ids), max_length // 2))
        prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :]
        response_ids = response_ids[: max_length - keep_prompt]
    if not response_ids:
        raise ValueError(f"max_length={max_length} leaves no response token; raise train.max_length")
    return prompt_ids + response_ids, [IGNORE_INDEX] * len(prompt_ids) + response_ids


def tokenize_pairs(tokenizer, pairs: PairSet, max_length: int, add_eos: bool = True) -> list[dict]:
    """One dict per pair: ids and labels of the chosen and the rejected row."""
    rows = []
    for prompt, chosen, rejected in zip(pairs.prompts, pairs.chosen, pairs.rejected, strict=True):
        c_ids, c_labels = tokenize_response(tokenizer, prompt, chosen, max_length, add_eos)
        r_ids, r_labels = tokenize_response(tokenizer, prompt, rejected, max_length, add_eos)
        rows.append({"chosen_ids": c_ids, "chosen_labels": c_labels, "rejected_ids": r_ids, "rejected_labels": r_labels})
    return rows


def tokenize_responses(tokenizer, prompts: Sequence[str], responses: Sequence[str], max_length: int,
                       add_eos: bool = True) -> list[dict]:
    """One dict per (prompt, response): ids and labels of its one row (SFT data)."""
    rows = []
    for prompt, response in zip(prompts, responses, strict=True):
        ids, labels = tokenize_response(tokenizer, prompt, response, max_length, add_eos)
        rows.append({"ids": ids, "labels": labels})
    return rows


class PreferenceDataset(torch.utils.data.Dataset):
    """K tokenised pair (or response) lists, one per objective; item i holds one row of each."""

    def __init__(self, objectives: Sequence[str], rows: Sequence[list[dict]], seed: int = 0):
        if len(objectives) != len(rows) or not objectives:
            raise ValueError("need one non-empty pair list per objective")
        for name, pairs in zip(objectives, rows, strict=True):
            if not pairs:
                raise ValueError(f"objective {name!r} has no preference pairs; check the data or the objectives list")
        self.objectives = list(objectives)
        self.rows = [list(r) for r in rows]
        rng = np.random.default_rng(seed)
        self.perms = [rng.permutation(len(r)) for r in self.rows]

    @classmethod
    def from_pairsets(cls, tokenizer, pairsets: dict[str, PairSet], max_length: int, seed: int = 0, add_eos=True):
        names = list(pairsets)
        return cls(names, [tokenize_pairs(tokenizer, pairsets[n], max_length, add_eos) for n in names], seed)

    def __len__(self) -> int:
        return max(len(r) for r in self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"pairs": [rows[perm[i % len(rows)]] for rows, perm in zip(self.rows, self.perms, strict=True)]}

    def num_pairs(self, k: int) -> int:
        return len(self.rows[k])

    def set_column(self, k: int, name: str, values) -> None:
        """Attach a per-pair float column (e.g. ``ref_chosen``, ``margins``) to objective k's pairs."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[0] != len(self.rows[k]):
            raise ValueError(f"column {name!r}: {values.shape[0]} values for {len(self.rows[k])} pairs")
        for row, value in zip(self.rows[k], values, strict=True):
            row[name] = value.tolist() if values.ndim > 1 else float(value)

    def get_column(self, k: int, name: str) -> np.ndarray:
        return np.asarray([row[name] for row in self.rows[k]], dtype=np.float64)

    def has_column(self, name: str) -> bool:
        return all(name in rows[0] for rows in self.rows)

    def subset(self, keep: Sequence[int]) -> PreferenceDataset:
        """Only objectives ``keep`` (by index), with the same rows (and columns) and permutations."""
        out = PreferenceDataset.__new__(PreferenceDataset)
        out.objectives = [self.objectives[k] for k in keep]
        out.rows = [self.rows[k] for k in keep]
        out.perms = [self.perms[k] for k in keep]
        return out


def pad(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad integer sequences into a (B, T) tensor (right padding keeps position ids 0..n-1)."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _padded(ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_id: int) -> dict:
    return {"input_ids": pad(ids, pad_id), "attention_mask": pad([[1] * len(s) for s in ids], 0),
            "labels": pad(labels, IGNORE_INDEX)}


def collate_objective(rows: Sequence[dict], pad_id: int) -> dict:
    """One objective's sub-batch: 2B rows (chosen first, then rejected) and any float columns."""
    ids = [r["chosen_ids"] for r in rows] + [r["rejected_ids"] for r in rows]
    labels = [r["chosen_labels"] for r in rows] + [r["rejected_labels"] for r in rows]
    batch = _padded(ids, labels, pad_id)
    skip = {"chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels"}
    for name in (k for k in rows[0] if k not in skip):
        batch[name] = torch.tensor([r[name] for r in rows], dtype=torch.float64)
    return batch


def collate_responses(rows: Sequence[dict], pad_id: int) -> dict:
    """One objective's sub-batch of responses alone: B rows and any float columns."""
    batch = _padded([r["ids"] for r in rows], [r["labels"] for r in rows], pad_id)
    for name in (k for k in rows[0] if k not in ("ids", "labels")):
        batch[name] = torch.tensor([r[name] for r in rows], dtype=torch.float64)
    return batch


class PreferenceCollator:
    """Items of :class:`PreferenceDataset` -> ``{"objectives": [sub_batch_1, ..., sub_batch_K]}``; ``collate``
    makes one sub-batch (:func:`collate_objective` for pairs, :func:`collate_responses` for responses)."""

    def __init__(self, pad_id: int, collate=collate_objective):
        self.pad_id, self.collate = pad_id, collate

    def __call__(self, items: Sequence[dict]) -> dict:
        num_objectives = len(items[0]["pairs"])
        return {"objectives": [self.collate([it["pairs"][k] for it in items], self.pad_id) for k in range(num_objectives)]}


def _after_prompts(prompts: Sequence[str], responses: Sequence[str], separator: str) -> list[str]:
    """Each response as the text that follows its prompt: after ``separator`` (HH prompts end with
    "Assistant:"), as in SFT, unless the prompt already ends with whitespace (chat templates end with a
    newline) or the response starts with it."""
    return [r if (not separator or r[:1].isspace() or p[-1:].isspace()) else separator + r
            for p, r in zip(prompts, responses, strict=True)]


def build_preference_dataset(
    tokenizer, pairsets: Mapping[str, PairSet], max_length: int, seed: int, separator: str = " "
) -> PreferenceDataset:
    """Tokenised pairs, one list per objective; responses joined to prompts by :func:`_after_prompts`."""
    prepared = {}
    for name, pairs in pairsets.items():
        prepared[name] = PairSet(list(pairs.prompts), _after_prompts(pairs.prompts, pairs.chosen, separator),
                                 _after_prompts(pairs.prompts, pairs.rejected, separator), list(pairs.objective),
                                 ids=list(pairs.ids))
    return PreferenceDataset.from_pairsets(tokenizer, prepared, max_length, seed)


def build_response_dataset(
    tokenizer, responsesets: Mapping[str, ScoredSet], max_length: int, seed: int, separator: str = " "
) -> PreferenceDataset:
    """Tokenised responses (each objective's SFT rows), one list per objective, joined as the pairs are."""
    names = list(responsesets)
    rows = [tokenize_responses(tokenizer, responsesets[n].prompts,
                               _after_prompts(responsesets[n].prompts, responsesets[n].responses, separator),
                               max_length) for n in names]
    return PreferenceDataset(names, rows, seed)
