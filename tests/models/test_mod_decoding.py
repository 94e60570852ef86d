"""MOD decoding: the combination rules against hand-computed numbers, the batched K-expert forward against K
separate forwards, the KV-cache decoder against a no-cache recomputation, and one-hot / K = 1 decoding against
plain ``generate`` of that expert (greedy and seeded sampling)."""

from __future__ import annotations

import math

import pytest
import torch

from moalign.config import GenerationSettings
from moalign.eval.generate import encode_prompts, generate, left_pad
from moalign.models.mod_decoding import (
    LoraExperts,
    ModelExperts,
    combine_scores,
    expert_names,
    load_experts,
    mod_generate,
)

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Hi\n\nAssistant:",
           "\n\nHuman: Tell me about the sea.\n\nAssistant: The"]
GREEDY = GenerationSettings(do_sample=False, max_new_tokens=10, stop_strings=[], batch_size=8)
SAMPLED = GenerationSettings(do_sample=True, temperature=0.8, top_p=0.9, top_k=20, max_new_tokens=10,
                             stop_strings=[], batch_size=8)
RULES = [("reverse_kl", 0.5), ("forward_kl", 0.5), ("alpha", 0.5)]


@pytest.fixture(scope="module")
def expert_dirs(tiny_lm_dir, tmp_path_factory):
    """Two LoRA experts on the tiny model whose B factors are random (so they differ from the base and each
    other)."""
    from peft import LoraConfig, get_peft_model

    from moalign.models.load import load_causal_lm

    root = tmp_path_factory.mktemp("mod_experts")
    paths = []
    for i in range(2):
        model = get_peft_model(load_causal_lm(tiny_lm_dir), LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]))
        g = torch.Generator().manual_seed(100 + i)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data = torch.randn(param.shape, generator=g) * 0.5
        model.save_pretrained(root / f"e{i}")
        paths.append(str(root / f"e{i}"))
    return paths


@pytest.fixture(scope="module")
def loaded(expert_dirs):
    return load_experts(expert_dirs)


def _mod(experts, w, tokenizer, **fixed):
    return lambda **kw: mod_generate(experts, w, tokenizer=tokenizer, **{**kw, **fixed})


# ----------------------------------------------------------------------------------------------------------
# The rules
# ----------------------------------------------------------------------------------------------------------

P1, P2, W = [0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.25, 0.75]


def _logps() -> torch.Tensor:
    return torch.log(torch.tensor([P1, P2], dtype=torch.float64))  # (K=2, V=3)


def test_reverse_kl_is_the_weighted_sum_of_log_probs():
    expected = [0.25 * math.log(0.5) + 0.75 * math.log(0.1), 0.25 * math.log(0.3) + 0.75 * math.log(0.6),
                0.25 * math.log(0.2) + 0.75 * math.log(0.3)]  # -1.9002, -0.6841, -1.3053
    got = combine_scores(_logps(), torch.tensor(W), rule="reverse_kl")
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64))
    assert got.argmax().item() == 1 and got[0].item() == pytest.approx(-1.90022, abs=1e-5)


def test_forward_kl_is_the_weighted_harmonic_mean():
    expected = [-math.log(0.25 / 0.5 + 0.75 / 0.1), -math.log(0.25 / 0.3 + 0.75 / 0.6), -math.log(0.25 / 0.2 + 0.75 / 0.3)]
    got = combine_scores(_logps(), torch.tensor(W), rule="forward_kl")
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64))
    assert got[0].item() == pytest.approx(-math.log(8.0))  # 0.5 + 7.5 = 8


def test_alpha_divergence_with_its_one_over_alpha_factor():
    def s(p1, p2, a):
        return -math.log(0.25 * p1 ** -a + 0.75 * p2 ** -a) / a

    got = combine_scores(_logps(), torch.tensor(W), rule="alpha", alpha=0.5)
    assert torch.allclose(got, torch.tensor([s(a, b, 0.5) for a, b in zip(P1, P2)], dtype=torch.float64))
    assert got[0].item() == pytest.approx(-2 * math.log(0.25 / math.sqrt(0.5) + 0.75 / math.sqrt(0.1)))
    forward = combine_scores(_logps(), torch.tensor(W), rule="forward_kl")
    assert torch.allclose(combine_scores(_logps(), torch.tensor(W), rule="alpha", alpha=1.0), forward)
    near_zero = combine_scores(_logps(), torch.tensor(W), rule="alpha", alpha=1e-5)  # alpha -> 0: reverse KL
    assert torch.allclose(near_zero, combine_scores(_logps(), torch.tensor(W)), atol=1e-4)


@pytest.mark.parametrize("rule, alpha", RULES)
def test_a_zero_weight_expert_is_left_out(rule, alpha):
    logps = _logps().clone()
    logps[1, 0] = -math.inf  # expert 2 rules token 0 out; with weight 0 it must not matter (no 0 * inf)
    got = combine_scores(logps, torch.tensor([1.0, 0.0]), rule=rule, alpha=alpha)
    assert torch.allclose(got, logps[0])


def test_batched_rows_combine_independently():
    logps = torch.log_softmax(torch.randn(4, 2, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    got = combine_scores(logps, torch.tensor(W), rule="forward_kl")
    for b in range(4):
        assert torch.allclose(got[b], combine_scores(logps[b], torch.tensor(W), rule="forward_kl"))


# ----------------------------------------------------------------------------------------------------------
# The batched forward and the cache
# ----------------------------------------------------------------------------------------------------------


def _encoded(tokenizer):
    enc = left_pad(encode_prompts(tokenizer, PROMPTS), tokenizer.pad_token_id)
    positions = (enc["attention_mask"].cumsum(-1) - 1).masked_fill(enc["attention_mask"] == 0, 0)
    return enc["input_ids"], enc["attention_mask"], positions


def test_one_batched_forward_equals_k_separate_forwards(loaded):
    experts, tokenizer, model = loaded
    ids, mask, positions = _encoded(tokenizer)
    batched = LoraExperts(model, experts.names).forward(ids, mask, positions)
    separate = ModelExperts([model, model], experts.names).forward(ids, mask, positions)
    assert batched.shape == (len(PROMPTS), 2, model.config.vocab_size)
    assert torch.allclose(batched, separate, atol=1e-5)
    for i, name in enumerate(experts.names):  # and the plain model with that adapter active, no adapter_names
        model.set_adapter(name)
        plain = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        assert torch.allclose(batched[:, i], plain, atol=1e-5)
    assert not torch.allclose(batched[:, 0], batched[:, 1], atol=1e-3)  # the experts do differ


def _recompute(model, names, weights, tokenizer, rule, scores, steps):
    """Greedy MOD without any cache: every step re-runs the whole sequence under each adapter."""
    ids, mask, _ = _encoded(tokenizer)
    cumulative = torch.zeros(ids.shape[0], len(names))
    for _ in range(steps):
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        logps = []
        for name in names:
            model.set_adapter(name)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
            logps.append(torch.log_softmax(logits[:, -1].float(), -1))
        logps = torch.stack(logps, 1)
        total = logps + cumulative[..., None] if scores == "cumulative" else logps
        token = combine_scores(total, torch.tensor(weights), rule=rule).argmax(-1)
        cumulative += logps.gather(-1, token[:, None, None].expand(-1, len(names), 1))[..., 0]
        ids = torch.cat([ids, token[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    return ids


@pytest.mark.parametrize("rule, scores", [("reverse_kl", "cumulative"), ("forward_kl", "cumulative"),
                                          ("forward_kl", "per_token")])
@pytest.mark.parametrize("batched", [True, False])
def test_kv_cache_decoding_equals_a_no_cache_recomputation(loaded, rule, scores, batched):
    experts, tokenizer, model = loaded
    runner = experts if batched else ModelExperts([model, model], experts.names)
    ids, mask, _ = _encoded(tokenizer)
    got = mod_generate(runner, [0.3, 0.7], ids, mask, rule=rule, scores=scores, max_new_tokens=8)
    assert torch.equal(got, _recompute(model, experts.names, [0.3, 0.7], tokenizer, rule, scores, 8))


def test_cumulative_and_per_token_scores_agree_under_reverse_kl(loaded):
    experts, tokenizer, _ = loaded
    ids, mask, _ = _encoded(tokenizer)
    a = mod_generate(experts, [0.4, 0.6], ids, mask, scores="cumulative", max_new_tokens=10)
    b = mod_generate(experts, [0.4, 0.6], ids, mask, scores="per_token", max_new_tokens=10)
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------------------------------------
# Reductions to plain generation
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule, alpha", RULES)
@pytest.mark.parametrize("settings", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_one_hot_mod_equals_generate_of_that_expert(loaded, rule, alpha, settings):
    experts, tokenizer, model = loaded
    outputs = []
    for k, name in enumerate(experts.names):
        w = [1.0 if i == k else 0.0 for i in range(2)]
        model.set_adapter(name)
        plain = generate(model, tokenizer, PROMPTS, settings, seed=3)
        mod = generate(model, tokenizer, PROMPTS, settings, seed=3,
                       generate_fn=_mod(experts, w, tokenizer, rule=rule, alpha=alpha))
        assert mod == plain
        outputs.append(mod)
    assert outputs[0] != outputs[1]


def test_a_single_expert_equals_generate(expert_dirs):
    experts, tokenizer, model = load_experts(expert_dirs[1:])
    assert experts.names == expert_names(1)
    for settings in (GREEDY, SAMPLED):
        plain = generate(model, tokenizer, PROMPTS, settings, seed=5)
        assert generate(model, tokenizer, PROMPTS, settings, seed=5,
                        generate_fn=_mod(experts, [1.0], tokenizer, rule="forward_kl")) == plain


def test_a_mixed_preference_differs_from_both_experts(loaded):
    experts, tokenizer, model = loaded
    texts = [generate(model, tokenizer, PROMPTS, GREEDY, generate_fn=_mod(experts, w, tokenizer))
             for w in ([1.0, 0.0], [0.5, 0.5], [0.0, 1.0])]
    assert texts[1] != texts[0] and texts[1] != texts[2]


def test_unbatched_lora_experts_decode_the_same_tokens(expert_dirs, loaded):
    experts, tokenizer, _ = loaded
    unbatched, _, _ = load_experts(expert_dirs, batched=False)
    assert isinstance(unbatched, ModelExperts)
    ids, mask, _ = _encoded(tokenizer)
    for rule in ("reverse_kl", "alpha"):
        a = mod_generate(experts, [0.6, 0.4], ids, mask, rule=rule, max_new_tokens=8)
        assert torch.equal(a, mod_generate(unbatched, [0.6, 0.4], ids, mask, rule=rule, max_new_tokens=8))


# ----------------------------------------------------------------------------------------------------------
# Stopping
# ----------------------------------------------------------------------------------------------------------


def test_eos_ends_a_row_and_pads_the_rest(loaded):
    experts, tokenizer, _ = loaded
    ids, mask, _ = _encoded(tokenizer)
    free = mod_generate(experts, [0.5, 0.5], ids, mask, max_new_tokens=8, pad_token_id=0)
    eos = int(free[0, ids.shape[1] + 2])  # row 0's third token plays EOS
    stopped = mod_generate(experts, [0.5, 0.5], ids, mask, max_new_tokens=8, eos_token_id=eos, pad_token_id=0)
    new, ref = stopped[:, ids.shape[1]:], free[:, ids.shape[1]:]
    for row in range(len(PROMPTS)):
        hits = (ref[row] == eos).nonzero()
        end = int(hits[0]) + 1 if len(hits) else ref.shape[1]
        assert torch.equal(new[row, :end], ref[row, :end])
        assert bool((new[row, end:] == 0).all())
    assert new.shape[1] <= ref.shape[1]


def test_stop_strings_end_rows_early_with_the_same_cut_texts(loaded):
    experts, tokenizer, model = loaded
    settings = GenerationSettings(do_sample=False, max_new_tokens=16, stop_strings=[], batch_size=8)
    free = generate(model, tokenizer, PROMPTS, settings, generate_fn=_mod(experts, [0.5, 0.5], tokenizer))
    stop = next(t[2:4] for t in free if len(t) >= 4)  # a string the free run produces
    with_stop = GenerationSettings(do_sample=False, max_new_tokens=16, stop_strings=[stop], batch_size=8)
    cut = generate(model, tokenizer, PROMPTS, with_stop, generate_fn=_mod(experts, [0.5, 0.5], tokenizer))
    assert cut == [t[: t.find(stop)].strip() if stop in t else t for t in free]


# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------


def test_bad_options_are_refused(loaded):
    experts, tokenizer, _ = loaded
    ids, mask, _ = _encoded(tokenizer)
    with pytest.raises(ValueError, match="rule='jsd'"):
        mod_generate(experts, [0.5, 0.5], ids, mask, rule="jsd")
    with pytest.raises(ValueError, match="alpha=0"):
        mod_generate(experts, [0.5, 0.5], ids, mask, rule="alpha", alpha=0.0)
    with pytest.raises(ValueError, match="2 non-negative"):
        mod_generate(experts, [0.5, 0.3, 0.2], ids, mask)
    with pytest.raises(ValueError, match="not all 0"):
        mod_generate(experts, [0.0, 0.0], ids, mask)


def test_a_mix_of_adapters_and_full_models_is_refused(expert_dirs, tiny_lm_dir):
    with pytest.raises(ValueError, match="mix LoRA adapter folders and full checkpoints"):
        load_experts([expert_dirs[0], tiny_lm_dir])


def test_full_checkpoints_run_as_k_models(tiny_lm_dir):
    experts, tokenizer, model = load_experts([tiny_lm_dir, tiny_lm_dir])
    assert isinstance(experts, ModelExperts) and len(experts) == 2
    plain = generate(model, tokenizer, PROMPTS, GREEDY)
    assert generate(model, tokenizer, PROMPTS, GREEDY, generate_fn=_mod(experts, [0.3, 0.7], tokenizer)) == plain
