"""Summed response log-probs: masks, the concatenated forward, padding, tokenisation of pairs."""

from __future__ import annotations

import math

import pytest
import torch

from moalign.data.schema import PairSet
from moalign.train.collate import PreferenceCollator, PreferenceDataset, collate_objective, tokenize_response
from moalign.train.logps import IGNORE_INDEX, pair_logps, sequence_logps, token_logps


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    from moalign.models.load import load_causal_lm, load_tokenizer

    return load_causal_lm(tiny_lm_dir), load_tokenizer(tiny_lm_dir)


def test_token_logps_by_hand():
    # vocabulary of 3; position t predicts labels[t + 1]
    logits = torch.tensor([[[0.0, 1.0, 2.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 2, 0]])
    out = token_logps(logits, labels)
    z0 = math.log(1 + math.e + math.e**2)
    z1 = math.log(math.e**2 + 2)
    assert out.shape == (1, 2)
    assert out[0, 0].item() == pytest.approx(2.0 - z0, abs=1e-6)  # p(token 2 | position 0)
    assert out[0, 1].item() == pytest.approx(2.0 - z1, abs=1e-6)  # p(token 0 | position 1)
    masked = token_logps(logits, torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 0]]))
    assert masked[0, 0].item() == 0.0  # ignored tokens contribute exactly nothing


def _manual_response_logp(model, ids, labels):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids)) if labels[t] != IGNORE_INDEX)


def test_sequence_logps_sums_response_tokens_only(lm):
    model, tok = lm
    ids, labels = tokenize_response(tok, "\n\nHuman: Hi?\n\nAssistant:", " Hello there.", max_length=64)
    n_prompt = len(tok("\n\nHuman: Hi?\n\nAssistant:")["input_ids"])
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt and all(x != IGNORE_INDEX for x in labels[n_prompt:])
    assert labels[-1] == tok.eos_token_id
    with torch.no_grad():
        got = sequence_logps(model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), torch.tensor([labels]))
    assert got.item() == pytest.approx(_manual_response_logp(model, ids, labels), abs=1e-4)


def test_concatenated_forward_matches_separate_rows_and_ignores_padding(lm):
    model, tok = lm
    rows = []
    for prompt, chosen, rejected in [("\n\nHuman: A?\n\nAssistant:", " Yes, gladly.", " No."),
                                     ("\n\nHuman: Tell me about the sea?\n\nAssistant:", " It is vast.", " Go away, now!")]:
        c_ids, c_lab = tokenize_response(tok, prompt, chosen, 64)
        r_ids, r_lab = tokenize_response(tok, prompt, rejected, 64)
        rows.append({"chosen_ids": c_ids, "chosen_labels": c_lab, "rejected_ids": r_ids, "rejected_labels": r_lab})
    batch = collate_objective(rows, tok.pad_token_id)
    assert batch["input_ids"].shape[0] == 4  # chosen rows first, then rejected
    with torch.no_grad():
        chosen, rejected, n_chosen, n_rejected = pair_logps(model, batch)
    # token counts: the response tokens of each row (its EOS included), padding and prompt excluded
    assert n_chosen.tolist() == [sum(x != IGNORE_INDEX for x in row["chosen_labels"]) for row in rows]
    assert n_rejected.tolist() == [sum(x != IGNORE_INDEX for x in row["rejected_labels"]) for row in rows]
    assert n_rejected.tolist() == [len(tok(" No.", add_special_tokens=False)["input_ids"]) + 1,
                                  len(tok(" Go away, now!", add_special_tokens=False)["input_ids"]) + 1]
    for i, row in enumerate(rows):
        assert chosen[i].item() == pytest.approx(_manual_response_logp(model, row["chosen_ids"], row["chosen_labels"]), abs=1e-4)
        assert rejected[i].item() == pytest.approx(
            _manual_response_logp(model, row["rejected_ids"], row["rejected_labels"]), abs=1e-4
        )


def test_truncation_keeps_prompt_end_and_response_start(lm):
    _, tok = lm
    prompt = "\n\nHuman: " + "word " * 60 + "?\n\nAssistant:"
    ids, labels = tokenize_response(tok, prompt, " A long answer " * 20, max_length=32)
    assert len(ids) == 32
    n_prompt = sum(x == IGNORE_INDEX for x in labels)
    assert n_prompt == 16  # half the budget kept for the prompt's end
    full_prompt = tok(prompt)["input_ids"]
    assert ids[:n_prompt] == full_prompt[-n_prompt:]
    with pytest.raises(ValueError, match="max_length"):
        tokenize_response(tok, "x", "y", max_length=0)


def test_dataset_cycles_each_objective_and_collates_k_sub_batches(lm):
    _, tok = lm

    def pairs(obj, n):
        return PairSet([f"\n\nHuman: q{i}?\n\nAssistant:" for i in range(n)], [f" yes {i}" for i in range(n)],
                       [" no"] * n, [obj] * n)

    data = PreferenceDataset.from_pairsets(tok, {"a": pairs("a", 5), "b": pairs("b", 2)}, max_length=32, seed=3)
    assert len(data) == 5
    seen_b = {tuple(data[i]["pairs"][1]["chosen_ids"]) for i in range(len(data))}
    assert len(seen_b) == 2  # the shorter objective is cycled
    seen_a = {tuple(data[i]["pairs"][0]["chosen_ids"]) for i in range(len(data))}
    assert len(seen_a) == 5  # every pair of the longer objective once per pass
    data.set_column(0, "ref_chosen", [1.0, 2.0, 3.0, 4.0, 5.0])
    data.set_column(0, "ref_rejected", [0.0] * 5)
    batch = PreferenceCollator(tok.pad_token_id)([data[0], data[1]])
    assert len(batch["objectives"]) == 2
    assert batch["objectives"][0]["ref_chosen"].dtype == torch.float64
    assert "ref_chosen" not in batch["objectives"][1]
    with pytest.raises(ValueError, match="values for"):
        data.set_column(1, "x", [1.0])
    with pytest.raises(ValueError, match="no preference pairs"):
        PreferenceDataset(["a"], [[]])
