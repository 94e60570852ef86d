"""Weight soups against hand-built interpolations: the tensors each mode writes, the logits they give, one-hot
w = the expert alone, the clean state between preferences, one base load, and the errors for bad experts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from moalign.models.soups import Soup, check_experts, load_lora_factors, read_expert

TARGETS = ["q_proj", "v_proj", "down_proj"]
TEXT = "\n\nHuman: Tell me about the sea.\n\nAssistant: The sea is"
W = (0.3, 0.7)


def _lora_expert(base_dir: str, folder: Path, seed: int, r: int = 4, alpha: float = 8.0) -> str:
    """A LoRA on the tiny base with random A and B (B != 0, as after training), saved as a stage saves it."""
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS, init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    with torch.no_grad():  # PEFT's non-init B is small; make the update comparable to the weights
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(20.0)
    model.save_pretrained(str(folder))
    return str(folder)


def _full_expert(base_dir: str, folder: Path, seed: int) -> str:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(str(folder))
    shutil.copy(Path(base_dir) / "tokenizer_config.json", folder)
    shutil.copy(Path(base_dir) / "tokenizer.json", folder)
    return str(folder)


@pytest.fixture(scope="module")
def experts(tiny_lm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("soup_experts")
    return {
        "lora": [_lora_expert(tiny_lm_dir, root / "lora1", 1), _lora_expert(tiny_lm_dir, root / "lora2", 2)],
        "lora_r2": _lora_expert(tiny_lm_dir, root / "lora_r2", 3, r=2, alpha=6.0),
        "lora3": _lora_expert(tiny_lm_dir, root / "lora3", 6),
        "full": [_full_expert(tiny_lm_dir, root / "full1", 4), _full_expert(tiny_lm_dir, root / "full2", 5)],
        "root": root,
    }


def _logits(model, tiny_lm_dir) -> torch.Tensor:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tiny_lm_dir)(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def _scaling(folder: str) -> float:
    config = json.loads((Path(folder) / "adapter_config.json").read_text())
    return config["lora_alpha"] / config["r"]


def _base_with_deltas(tiny_lm_dir, deltas: dict[str, torch.Tensor]):
    """The plain base model with W0 + delta written into each module: a soup built by hand."""
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    with torch.no_grad():
        for module, delta in deltas.items():
            model.get_submodule(module).weight.add_(delta)
    return model


def _factors(folders):
    return [load_lora_factors(f) for f in folders]


def _soup_layer(soup: Soup, module: str):
    return soup.model.base_model.model.get_submodule(module)


def test_lora_factors_writes_sum_w_a_and_sum_w_b_which_is_not_the_sum_of_deltas(experts, tiny_lm_dir):
    folders = experts["lora"]
    (f1, f2), s = _factors(folders), _scaling(folders[0])
    soup = Soup(folders, "lora_factors")
    assert sorted(f1) == sorted(_factors([folders[1]])[0]) and len(f1) == 2 * 3  # q, v, down in 2 layers
    with soup.mixed(W) as model:
        deltas = {}
        for module in f1:
            a, b = W[0] * f1[module][0] + W[1] * f2[module][0], W[0] * f1[module][1] + W[1] * f2[module][1]
            layer = _soup_layer(soup, module)
            assert torch.allclose(layer.lora_A["soup"].weight, a, atol=1e-7, rtol=0)
            assert torch.allclose(layer.lora_B["soup"].weight, b, atol=1e-7, rtol=0)
            assert layer.scaling["soup"] == s
            deltas[module] = s * b @ a
            exact = s * (W[0] * f1[module][1] @ f1[module][0] + W[1] * f2[module][1] @ f2[module][0])
            assert (deltas[module] - exact).abs().max() > 1e-3  # cross terms B_1 A_2: not the mixture of updates
        logits = _logits(model, tiny_lm_dir)
    assert torch.allclose(logits, _logits(_base_with_deltas(tiny_lm_dir, deltas), tiny_lm_dir), atol=1e-5)


def test_merged_delta_is_the_exact_mixture_of_updates_even_for_different_ranks(experts, tiny_lm_dir):
    folders = [experts["lora"][0], experts["lora_r2"]]
    (f1, f2), (s1, s2) = _factors(folders), (_scaling(folders[0]), _scaling(folders[1]))
    assert (f1[next(iter(f1))][0].shape[0], f2[next(iter(f2))][0].shape[0]) == (4, 2) and s1 != s2
    with pytest.raises(ValueError, match="same r"):
        Soup(folders, "lora_factors")
    soup = Soup(folders, "merged_delta")
    with soup.mixed(W) as model:
        deltas = {}
        for module in f1:
            deltas[module] = W[0] * s1 * f1[module][1] @ f1[module][0] + W[1] * s2 * f2[module][1] @ f2[module][0]
            layer = _soup_layer(soup, module)
            a, b = layer.lora_A["soup"].weight, layer.lora_B["soup"].weight
            assert a.shape[0] == 6 and layer.scaling["soup"] == 1.0  # rank r1 + r2, scalings folded into A
            assert torch.allclose(b @ a, deltas[module], atol=1e-6, rtol=0)
        logits = _logits(model, tiny_lm_dir)
    assert torch.allclose(logits, _logits(_base_with_deltas(tiny_lm_dir, deltas), tiny_lm_dir), atol=1e-5)


def test_three_experts_mix_with_three_weights(experts, tiny_lm_dir):
    folders, w = [*experts["lora"], experts["lora3"]], (0.2, 0.3, 0.5)
    factors, s = _factors(folders), _scaling(folders[0])
    factor_soup, delta_soup = Soup(folders, "lora_factors"), Soup(folders, "merged_delta")
    with factor_soup.mixed(w), delta_soup.mixed(w):
        for module in factors[0]:
            a = sum(wi * f[module][0] for wi, f in zip(w, factors))
            b = sum(wi * f[module][1] for wi, f in zip(w, factors))
            assert torch.allclose(_soup_layer(factor_soup, module).lora_A["soup"].weight, a, atol=1e-7, rtol=0)
            assert torch.allclose(_soup_layer(factor_soup, module).lora_B["soup"].weight, b, atol=1e-7, rtol=0)
            layer = _soup_layer(delta_soup, module)
            exact = sum(wi * s * f[module][1] @ f[module][0] for wi, f in zip(w, factors))
            assert torch.allclose(layer.lora_B["soup"].weight @ layer.lora_A["soup"].weight, exact, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="exactly 3 entries"), factor_soup.mixed(W):
        pass


def test_full_weights_on_lora_experts_merges_the_mixture_into_the_base_weights(experts, tiny_lm_dir):
    folders = experts["lora"]
    (f1, f2), s = _factors(folders), _scaling(folders[0])
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    soup = Soup(folders, "full_weights")
    assert not hasattr(soup.model, "peft_config")  # no adapter: the weights themselves are mixed
    with soup.mixed(W) as model:
        for module in f1:
            expected = base.get_submodule(module).weight + s * (W[0] * f1[module][1] @ f1[module][0]
                                                                + W[1] * f2[module][1] @ f2[module][0])
            assert torch.allclose(model.get_submodule(module).weight, expected, atol=1e-6, rtol=0)
        merged = _logits(model, tiny_lm_dir)
    with Soup(folders, "merged_delta").mixed(W) as model:
        assert torch.allclose(merged, _logits(model, tiny_lm_dir), atol=1e-5)  # two ways to one function


def test_full_weights_on_full_experts_interpolates_every_tensor(experts, tiny_lm_dir):
    folders = experts["full"]
    t1, t2 = (load_file(str(Path(f) / "model.safetensors")) for f in folders)
    expected = {k: W[0] * t1[k] + W[1] * t2[k] for k in t1}
    soup = Soup(folders, "full_weights")
    with soup.mixed(W) as model:
        state = model.state_dict()
        assert all(torch.allclose(state[k], v, atol=1e-7, rtol=0) for k, v in expected.items())
        logits = _logits(model, tiny_lm_dir)
    by_hand = AutoModelForCausalLM.from_pretrained(folders[0]).eval()
    by_hand.load_state_dict(expected, strict=False)
    assert torch.allclose(logits, _logits(by_hand, tiny_lm_dir), atol=1e-5)


@pytest.mark.parametrize("mode", ["lora_factors", "merged_delta", "full_weights", "full_weights/full"])
def test_one_hot_w_is_the_expert_alone(experts, tiny_lm_dir, mode):
    mode, _, kind = mode.partition("/")
    folders = experts[kind or "lora"]
    soup = Soup(folders, mode)
    base = _logits(AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval(), tiny_lm_dir)
    for k, folder in enumerate(folders):
        if kind == "full":
            alone = AutoModelForCausalLM.from_pretrained(folder).eval()
        else:
            alone = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm_dir), folder).eval()
        with soup.mixed([1.0 - k, float(k)]) as model:
            got = _logits(model, tiny_lm_dir)
        want = _logits(alone, tiny_lm_dir)
        if mode == "lora_factors" or kind == "full":  # 1 * A_k + nothing: the expert's own tensors, bit for bit
            assert torch.equal(got, want)
        else:  # the same update computed another way (rank-stacked, or merged into W)
            assert torch.allclose(got, want, atol=1e-5)
        assert (got - base).abs().max() > 1e-2  # the expert's update is there


@pytest.mark.parametrize("mode", ["lora_factors", "merged_delta", "full_weights", "full_weights/full"])
def test_each_preference_starts_from_the_same_clean_state(experts, tiny_lm_dir, mode):
    mode, _, kind = mode.partition("/")
    soup = Soup(experts[kind or "lora"], mode)
    before = _logits(soup.model, tiny_lm_dir)
    runs = []
    for w in [(0.3, 0.7), (0.9, 0.1), (0.3, 0.7)]:
        with soup.mixed(w) as model:
            runs.append(_logits(model, tiny_lm_dir))
        assert torch.equal(_logits(soup.model, tiny_lm_dir), before)  # restored after every policy
    assert torch.equal(runs[0], runs[2]) and not torch.allclose(runs[0], runs[1], atol=1e-4)
    if kind != "full":  # clean = the base itself (adapter zeroed or W0 back)
        base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
        assert torch.equal(before, _logits(base, tiny_lm_dir))


def test_the_state_is_restored_when_the_body_raises(experts, tiny_lm_dir):
    soup = Soup(experts["lora"], "lora_factors")
    before = _logits(soup.model, tiny_lm_dir)
    with pytest.raises(RuntimeError), soup.mixed(W):
        raise RuntimeError("generation failed")
    assert torch.equal(_logits(soup.model, tiny_lm_dir), before)


def _copy_with_base(folder: str, dest: Path, base: str) -> str:
    shutil.copytree(folder, dest, dirs_exist_ok=True)
    path = dest / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config))
    return str(dest)


def test_bad_experts_are_refused_with_the_fix(experts, tmp_path):
    lora, full = experts["lora"], experts["full"]
    other = _copy_with_base(lora[1], tmp_path / "other_base", "org/another-model")
    with pytest.raises(ValueError, match="same base model"):
        Soup([lora[0], other], "lora_factors")
    with pytest.raises(ValueError, match="full models .*use mode='full_weights'"):
        check_experts([read_expert(f) for f in full], "lora_factors")
    with pytest.raises(ValueError, match="mix LoRA adapters and full models"):
        check_experts([read_expert(lora[0]), read_expert(full[0])], "full_weights")
    with pytest.raises(ValueError, match="choose one of lora_factors"):
        check_experts([read_expert(f) for f in lora], "linear")
    with pytest.raises(ValueError, match="two or more experts"):
        check_experts([read_expert(lora[0])], "lora_factors")
    with pytest.raises(ValueError, match="not an expert policy folder"):
        read_expert(tmp_path)
    dora = _copy_with_base(lora[1], tmp_path / "dora", json.loads((Path(lora[1]) / "adapter_config.json").read_text())[
        "base_model_name_or_path"])
    config = json.loads((Path(dora) / "adapter_config.json").read_text())
    (Path(dora) / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ValueError, match="use_dora=True is not supported"):
        read_expert(dora)


def test_a_preference_of_the_wrong_length_or_off_the_simplex_is_refused(experts):
    soup = Soup(experts["lora"], "lora_factors")
    with pytest.raises(ValueError, match="exactly 2 entries"):
        with soup.mixed([0.2, 0.3, 0.5]):
            pass
    with pytest.raises(ValueError, match="sums to"):
        with soup.mixed([0.5, 0.6]):
            pass
