"""SIPO's building blocks: the Pareto filter on hand-made score tables, the new pairs, and the re-alignment
loss DPO + alpha * NLL against hand-computed values and gradients (alpha = 0 is exactly DPO)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from moalign.config import ConfigError
from moalign.methods.registry import get_method, method_config
from moalign.methods.sipo import SIPOConfig, pareto_survivor, survivor_pairs
from moalign.methods.sipo.candidates import keep_rewrite
from moalign.train.losses import PairLogps, dpo_nll_pair_loss, dpo_pair_loss

CHOSEN, REJECTED = np.array([1.0, 2.0, 0.5]), np.array([0.0, 2.5, 0.4])


def test_only_a_candidate_above_both_originals_under_every_reward_survives():
    table = np.array([
        [2.0, 2.6, 0.6],   # beats both everywhere: sum 5.2
        [9.0, 2.5, 9.0],   # ties the rejected response on reward 1 (2.5 = 2.5): out
        [1.0, 3.0, 1.0],   # equal to the chosen on reward 0: out
        [3.0, 2.7, 0.6],   # beats both everywhere: sum 6.3, the best
    ])
    assert pareto_survivor(table, CHOSEN, REJECTED) == 3
    assert pareto_survivor(table[:3], CHOSEN, REJECTED) == 0
    assert pareto_survivor(table[1:3], CHOSEN, REJECTED) is None
    assert pareto_survivor(np.vstack([CHOSEN, REJECTED]), CHOSEN, REJECTED) is None  # the originals themselves
    tied = np.array([[2.0, 3.0, 1.0], [2.5, 2.75, 0.75]])  # equal sums (6.0, exact in binary): the first is kept
    assert pareto_survivor(tied, CHOSEN, REJECTED) == 0


def test_bad_score_tables_are_refused():
    with pytest.raises(ValueError, match=r"must be \(C, R\)"):
        pareto_survivor(np.ones((2, 2)), CHOSEN, REJECTED)
    with pytest.raises(ValueError, match="finite"):
        pareto_survivor(np.array([[np.nan, 3.0, 1.0]]), CHOSEN, REJECTED)


def test_the_survivor_is_chosen_over_each_original_for_every_objective():
    pairs = survivor_pairs("Q?", "best", "a", "b", ["helpful", "harmless"], pair_id="7")
    assert list(zip(pairs.objective, pairs.chosen, pairs.rejected)) == [
        ("helpful", "best", "a"), ("helpful", "best", "b"), ("harmless", "best", "a"), ("harmless", "best", "b")]
    assert pairs.prompts == ["Q?"] * 4 and pairs.ids[1] == "helpful:7:over-rejected"


def _logps(policy_chosen):
    t = torch.tensor
    return PairLogps(policy_chosen, t([-4.0, -3.0], dtype=torch.float64), t([-5.0, -2.0], dtype=torch.float64),
                     t([-4.5, -2.5], dtype=torch.float64), chosen_tokens=t([4, 2]), rejected_tokens=t([3, 3]))


def test_the_loss_is_dpo_plus_alpha_times_the_chosen_nll_per_token():
    beta, alpha = 0.5, 0.1
    chosen = torch.tensor([-6.0, -1.0], dtype=torch.float64, requires_grad=True)
    loss = dpo_nll_pair_loss(beta, alpha)(_logps(chosen), 0)
    gaps = [(-6.0 + 5.0) - (-4.0 + 4.5), (-1.0 + 2.0) - (-3.0 + 2.5)]  # -1.5, 1.5
    expected = [math.log1p(math.exp(-beta * g)) - alpha * c / n for g, c, n in zip(gaps, [-6.0, -1.0], [4, 2])]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))
    loss.sum().backward()  # d/d log pi(y_w) = -beta * sigmoid(-beta * gap) - alpha / |y_w|
    grads = [-beta / (1 + math.exp(beta * g)) - alpha / n for g, n in zip(gaps, [4, 2])]
    torch.testing.assert_close(chosen.grad, torch.tensor(grads, dtype=torch.float64))


def test_alpha_zero_is_exactly_dpo_and_a_negative_alpha_is_refused():
    logps = _logps(torch.tensor([-6.0, -1.0], dtype=torch.float64))
    assert torch.equal(dpo_nll_pair_loss(0.5, alpha=0.0)(logps, 1), dpo_pair_loss(0.5)(logps, 1))
    with pytest.raises(ValueError, match="alpha=-0.1"):
        dpo_nll_pair_loss(0.5, alpha=-0.1)


def test_the_official_padded_length_divides_by_the_sub_batch_width():
    beta, alpha = 0.5, 0.1
    logps = _logps(torch.tensor([-6.0, -1.0], dtype=torch.float64))
    logps.sequence_width = 20
    gaps = [-1.5, 1.5]
    expected = [math.log1p(math.exp(-beta * g)) - alpha * c / 20 for g, c in zip(gaps, [-6.0, -1.0])]
    torch.testing.assert_close(dpo_nll_pair_loss(beta, alpha, length="padded_batch")(logps, 0),
                               torch.tensor(expected, dtype=torch.float64))
    logps.sequence_width = None
    with pytest.raises(ValueError, match="sequence_width"):
        dpo_nll_pair_loss(beta, alpha, length="padded_batch")(logps, 0)
    with pytest.raises(ValueError, match="length='prompt'"):
        dpo_nll_pair_loss(beta, alpha, length="prompt")


def test_the_trainer_hands_the_loss_the_padded_width_of_each_sub_batch(tiny_lm_dir):
    from moalign.config import LoraSettings, TrainSettings
    from moalign.data.schema import PairSet
    from moalign.train.preference_run import build_preference_trainer

    pairs = PairSet(["Q: a?", "Q: longer question here?"], [" yes", " fine"], [" no way at all", " n"], ["h", "h"])
    seen = []

    def loss_fn(logps, k, w):
        seen.append(logps.sequence_width)
        return dpo_nll_pair_loss(0.5, 0.1, length="padded_batch")(logps, k, w)

    settings = TrainSettings(max_steps=1, per_device_train_batch_size=2, max_length=64, lora=LoraSettings(r=4))
    trainer = build_preference_trainer(tiny_lm_dir, {"h": pairs}, loss_fn=loss_fn, settings=settings,
                                       output_dir="unused", seed=0, reference="adapter")
    batch = next(iter(trainer.get_train_dataloader()))["objectives"][0]
    trainer.compute_loss(trainer.model, {"objectives": [batch]})
    assert seen == [batch["input_ids"].shape[1]] and seen[0] == int(batch["attention_mask"].sum(-1).max())


def test_a_rewrite_is_kept_unless_the_original_scores_at_least_as_high_everywhere():
    original = np.array([1.0, 2.0])
    assert keep_rewrite(original, np.array([1.5, 1.0]))  # better on one reward: kept
    assert not keep_rewrite(original, np.array([1.0, 2.0]))  # a tie everywhere: the original
    assert not keep_rewrite(original, np.array([0.5, 2.0]))  # weakly dominated: the original
    assert keep_rewrite(original, np.array([1.0, 2.1]))


def _token_logp(model, tokenizer, prompt, response):
    """Summed log-prob of the response tokens, by hand: the prompt and ' response' + EOS tokenised as the
    trainer does, one forward, log-softmax at each response position."""
    from moalign.train.collate import tokenize_responses

    row = tokenize_responses(tokenizer, [prompt], [" " + response], 256)[0]
    ids = torch.tensor([row["ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    labels = torch.tensor(row["labels"])
    positions = (labels != -100).nonzero()[:, 0]
    return float(sum(torch.log_softmax(logits[p - 1], -1)[labels[p]] for p in positions))


def test_implicit_rewards_are_beta_times_the_log_ratio_under_each_expert_and_each_hand_mixed_soup(
        lora_experts, tiny_lm_dir):
    from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict

    from moalign.config import ModelConfig
    from moalign.methods.sipo.candidates import implicit_reward_table
    from moalign.models.load import load_causal_lm, load_policy, load_tokenizer

    prompts, responses = ["\n\nHuman: Hi\n\nAssistant:", "\n\nHuman: Bread?\n\nAssistant:"], ["Hello there.", "Knead it."]
    table = implicit_reward_table(lora_experts, [0.25], ModelConfig(tiny_lm_dir), prompts, responses, beta=0.5,
                                  max_length=256)
    assert table.shape == (2, 3)
    tokenizer = load_tokenizer(tiny_lm_dir)
    base = [_token_logp(load_causal_lm(tiny_lm_dir), tokenizer, p, r) for p, r in zip(prompts, responses)]
    for k, folder in enumerate(lora_experts):
        model = load_policy(folder)[0]
        expected = [0.5 * (_token_logp(model, tokenizer, p, r) - b) for p, r, b in zip(prompts, responses, base)]
        np.testing.assert_allclose(table[:, k], expected, rtol=1e-5, atol=1e-6)
    soup = PeftModel.from_pretrained(load_causal_lm(tiny_lm_dir), lora_experts[0], adapter_name="a")
    soup.load_adapter(lora_experts[1], adapter_name="b")
    first, second = get_peft_model_state_dict(soup, adapter_name="a"), get_peft_model_state_dict(soup, adapter_name="b")
    set_peft_model_state_dict(soup, {k: 0.25 * first[k] + 0.75 * second[k] for k in first}, adapter_name="a")
    soup.set_adapter("a")
    expected = [0.5 * (_token_logp(soup, tokenizer, p, r) - b) for p, r, b in zip(prompts, responses, base)]
    np.testing.assert_allclose(table[:, 2], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(table[:, 0], table[:, 1])  # the experts differ, so the check can fail


@pytest.mark.parametrize("override, message", [
    ("task.objectives=[positivity,brevity,length]", "two objectives"),
    ("method.review.objective=helpfulness", "method.review.objective='helpfulness'"),
    ("method.experts.objectives=[brevity]", "one expert per task objective"),
])
def test_run_level_settings_are_checked_before_anything_runs(override, message):
    config = method_config("sipo", overrides=[override])
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.method.check_run(config)


@pytest.mark.parametrize("override, message", [
    ("method.experts.train.lora.r=0", "method.experts.train.lora.r=0"),
    ("method.realign.train.lora.r=0", "method.realign.train.lora.r=0"),
    ("method.realign.nll_length=prompt", "method.realign.nll_length"),
    ("method.scorer=judge", "method.scorer"),
    ("method.sample_weights=[]", "method.sample_weights=[]"),
    ("method.sample_weights=[1.5]", "method.sample_weights[0]"),
    ("method.review.review_template=no fields", "method.review.review_template lacks"),
    ("method.iterations=0", "method.iterations"),
])
def test_bad_options_name_the_field(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        method_config("sipo", overrides=[override])


def test_registered_with_its_embedded_config():
    spec = get_method("sipo")
    assert spec.config_cls is SIPOConfig
    config = method_config("sipo")
    assert config.method.sample_weights == [0.2, 0.4, 0.6, 0.8] and config.method.realign.alpha == 0.1
    assert config.method.iterations == 1 and config.method.review.objective is None


def test_the_select_stage_keeps_undominated_rewrites_filters_and_writes_the_new_pairs(tmp_path):
    """Two conflicting comparisons, two sample weights, three reward models, every score set by hand."""
    from moalign.data.io import load_pairs, save_pairs
    from moalign.data.schema import PairSet
    from moalign.eval.rows import read_rows, write_rows
    from moalign.methods.sipo.pipeline import CONFLICTS_FILE, ROWS_FILE, SCORES_FILE, select_stage
    from moalign.pipeline import Run

    config = method_config("sipo", overrides=["method.sample_weights=[0.2,0.8]"])
    scores = {("p0", "a"): [1, 1, 1], ("p0", "b"): [0, 2, 0], ("p0", "s"): [2, 3, 1.5], ("p0", "r"): [1.9, 2.9, 1.4],
              ("p0", "t"): [0.5, 0.5, 0.5], ("p0", "u"): [3, 1, 5],
              ("p1", "c"): [0, 0, 0], ("p1", "d"): [1, 1, 1], ("p1", "v"): [2, 2, 2],
              ("p1", "x"): [0, 5, 5], ("p1", "y"): [3, 3, 3]}
    samples = {0.2: [("p0", "s", "r"), ("p1", "v", "v")], 0.8: [("p0", "t", "u"), ("p1", "x", "y")]}
    with Run(tmp_path / "run", echo=None) as run:
        run.stage("c", {}, lambda out: save_pairs(PairSet(["p0", "p1"], ["a", "c"], ["b", "d"], ["positivity"] * 2,
                                                          ids=["7", "9"]), out / CONFLICTS_FILE))
        for a, rows in samples.items():
            run.stage(f"s{a}", {}, lambda out, rows=rows: write_rows(out / ROWS_FILE, (
                {"index": i, "prompt": p, "response": s} for i, (p, s, _) in enumerate(rows))))
            run.stage(f"r{a}", {}, lambda out, rows=rows: write_rows(out / ROWS_FILE, (
                {"index": i, "prompt": p, "response": s, "rewrite": r} for i, (p, s, r) in enumerate(rows))))
        run.stage("scores", {}, lambda out: np.savez(
            out / SCORES_FILE, prompts=np.array([p for p, _ in scores], dtype=object),
            responses=np.array([t for _, t in scores], dtype=object), scores=np.array(list(scores.values()), float)))
        folder = run.stage_dir(select_stage(config, run, "select", "c", ["s0.2", "s0.8"], ["r0.2", "r0.8"], "scores"))
    info = __import__("json").loads((folder / "info.json").read_text())
    # p0: s kept over its dominated rewrite r and beats a and b everywhere; u (kept: 3 > 0.5) loses to b on reward 1.
    # p1: v's rewrite is v itself (a tie: the original); y is kept and beats c, d with the larger sum (9 > 6).
    assert [row["survivor"] for row in read_rows(folder / ROWS_FILE)] == ["s", "y"]
    assert info["survivors_by_weight"] == {"0.20": 1, "0.80": 1} and info["rewrites_kept"] == {"0.20": 0, "0.80": 2}
    pairs = load_pairs(folder / "pairs.jsonl")
    assert list(zip(pairs.objective, pairs.chosen, pairs.rejected))[:4] == [
        ("positivity", "s", "a"), ("positivity", "s", "b"), ("brevity", "s", "a"), ("brevity", "s", "b")]
    assert pairs.chosen[4:] == ["y"] * 4 and pairs.ids[5] == "positivity:9:over-rejected" and info["new_pairs"] == 8


def test_the_explicit_scorer_scores_each_distinct_text_once_with_the_task_rewards(tmp_path):
    from moalign.data.io import save_pairs
    from moalign.data.schema import PairSet
    from moalign.eval.rows import write_rows
    from moalign.methods.sipo.pipeline import CONFLICTS_FILE, ROWS_FILE, load_scores, scores_stage
    from moalign.pipeline import Run
    from moalign.rewards.lazy import LazyRewards

    config = method_config("sipo", overrides=["method.scorer=explicit"])
    prompt = "\n\nHuman: Hi\n\nAssistant:"
    with Run(tmp_path / "run", echo=None) as run:
        run.stage("c", {}, lambda out: save_pairs(PairSet([prompt], ["What a lovely day!"], ["No."], ["positivity"]),
                                                  out / CONFLICTS_FILE))
        run.stage("s", {}, lambda out: write_rows(out / ROWS_FILE, [{"index": 0, "prompt": prompt, "response": "No."}]))
        folder = run.stage_dir(scores_stage(config, run, "scores", [], ["c", "s"]))
    table = load_scores(folder)
    assert sorted(t for _, t in table) == ["No.", "What a lovely day!"]  # "No." twice, scored once
    expected = LazyRewards.for_task(config.task).score([prompt, prompt], ["What a lovely day!", "No."])
    np.testing.assert_allclose(np.stack([table[(prompt, "What a lovely day!")], table[(prompt, "No.")]]), expected)
    assert list(np.load(folder / "scores.npz", allow_pickle=True)["columns"]) == ["positivity", "brevity"]
    assert expected[0, 0] > expected[1, 0] and expected[1, 1] > expected[0, 1]  # the rewards tell them apart


def test_the_pairs_stage_draws_sipos_conflict_mixture_when_asked(tmp_path):
    from moalign.data.io import load_pairs
    from moalign.data.pairs import comparisons, conflict_mask
    from moalign.methods.preference_data import PAIRS_FILE, pairs_stage
    from moalign.pipeline import Run

    config = method_config("sipo", overrides=["method.experts.pairs.conflict_fraction=0.6",
                                              "method.experts.pairs.max_pairs_per_objective=null"])
    with Run(tmp_path / "run", echo=None) as run:
        pairs = load_pairs(pairs_stage(config, run, config.method.experts.pairs) / PAIRS_FILE)
    table = comparisons(pairs, ["positivity", "brevity"])
    assert all(set(votes) == {"positivity", "brevity"} for votes in table.values())  # both objectives rank each
    conflicting = int(conflict_mask(pairs).sum()) // 2  # each conflicting comparison appears once per objective
    assert conflicting == round(0.6 * len(table)) and len(pairs) == 2 * len(table) > 0
    with pytest.raises(ConfigError, match="method.pairs.conflict_fraction"):
        method_config("sipo", overrides=["method.experts.pairs.conflict_fraction=1.5"])
