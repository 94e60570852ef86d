"""Panacea's SVD-LoRA: the delta weight against a hand-built U diag(.) V^T, identity at init, gradients reach
U, V, sigma and s but never lambda, per-sample preferences, merging, and the save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel, get_peft_model
from torch import nn

from moalign.config import LoraSettings, ModelConfig, TrainSettings
from moalign.models.adapters import LORA, SVDLoraAdapter, load_model
from moalign.models.load import load_causal_lm, load_policy, load_tokenizer
from moalign.models.svd_lora import (
    CONFIG_FILE,
    PanaceaLinear,
    SVDLoraSpec,
    merge_preference,
    panacea_layers,
    set_preference,
    svd_lora_config,
)

IDS = torch.tensor([[5, 9, 13, 2, 7, 11], [3, 4, 8, 16, 1, 6], [12, 10, 14, 15, 17, 18]])
PREFERENCES = ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7])


def one_layer(spec=SVDLoraSpec(2), rank=3, alpha=10.0, seed=0):
    """A PanaceaLinear around a 6 -> 4 linear layer, hosted by PEFT on a one-layer module."""
    torch.manual_seed(seed)
    model = get_peft_model(nn.Sequential(nn.Linear(6, 4)), svd_lora_config(spec, rank=rank, alpha=alpha,
                                                                           target_modules=["0"], task_type=None))
    (layer,) = panacea_layers(model)
    return model, layer


def randomise(model, seed=1):
    """Non-zero U, V, sigma and s everywhere (the init makes the adapter the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in panacea_layers(model):
            for params in (layer.lora_A, layer.lora_B, layer.lora_E, layer.lora_pref_scale):
                params["default"].copy_(torch.randn(params["default"].shape, generator=g))


def tiny_svd_model(tiny_lm_dir, m=2, rank=4):
    torch.manual_seed(0)
    settings = TrainSettings(lora=LoraSettings(r=rank, alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    model = SVDLoraAdapter(SVDLoraSpec(m)).build(load_causal_lm(tiny_lm_dir), settings)
    randomise(model)
    return model


def test_delta_weight_is_u_diag_v_by_hand():
    model, layer = one_layer()
    randomise(model)
    lam = torch.tensor([0.25, 0.75])
    set_preference(model, lam)
    a, b = layer.lora_A["default"], layer.lora_B["default"]  # (k+m, in), (out, k+m)
    sigma, s = layer.lora_E["default"].detach(), layer.lora_pref_scale["default"].detach()
    diagonal = torch.tensor([sigma[0], sigma[1], sigma[2], s[0] * 0.25, s[0] * 0.75])
    by_hand = b @ torch.diag(diagonal) @ a * (10.0 / 5)  # scaling = alpha / (k + m)
    torch.testing.assert_close(layer.get_delta_weight("default"), by_hand)
    x = torch.randn(7, 6)
    base = layer.get_base_layer()
    torch.testing.assert_close(model(x), base(x) + x @ by_hand.T)


@pytest.mark.parametrize("init", ["lora", "svd"])
def test_identity_at_init_for_every_preference(tiny_lm_dir, init):
    base = load_causal_lm(tiny_lm_dir)
    with torch.no_grad():
        expected = base(IDS).logits
    settings = TrainSettings(lora=LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    model = SVDLoraAdapter(SVDLoraSpec(2, init=init)).build(base, settings)
    for lam in ([1.0, 0.0], [0.0, 1.0], [0.5, 0.5]):
        set_preference(model, lam)
        with torch.no_grad():
            torch.testing.assert_close(model(IDS).logits, expected, rtol=0, atol=0)


def test_gradients_reach_u_v_sigma_and_s_never_lambda():
    model, layer = one_layer()
    randomise(model)
    lam = torch.tensor([0.4, 0.6], requires_grad=True)
    set_preference(model, lam)
    model(torch.randn(5, 6)).pow(2).sum().backward()
    for params in (layer.lora_A, layer.lora_B, layer.lora_E, layer.lora_pref_scale):
        grad = params["default"].grad
        assert grad is not None and grad.abs().sum() > 0
    assert lam.grad is None  # lambda is an input: detached, never trained
    assert layer.get_base_layer().weight.grad is None
    trainable = {n.split(".")[-2] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A", "lora_B", "lora_E", "lora_pref_scale"}


def test_scale_gradient_matches_finite_differences():
    model, layer = one_layer()
    randomise(model)
    set_preference(model, [0.4, 0.6])
    x = torch.randn(5, 6, dtype=torch.float64)
    model.double()

    def loss():
        return model(x).pow(2).sum()

    loss().backward()
    analytic = layer.lora_pref_scale["default"].grad.item()
    s = layer.lora_pref_scale["default"]
    eps = 1e-6
    with torch.no_grad():
        s += eps
        up = loss().item()
        s -= 2 * eps
        down = loss().item()
        s += eps
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-6)


def test_mixed_batch_equals_per_preference_forwards(tiny_lm_dir):
    model = tiny_svd_model(tiny_lm_dir)
    alone = []
    with torch.no_grad():
        for row, lam in enumerate(PREFERENCES):
            set_preference(model, lam)
            alone.append(model(IDS[row : row + 1]).logits[0])
        set_preference(model, torch.tensor(PREFERENCES))
        mixed = model(IDS).logits
        set_preference(model, PREFERENCES[1])
        other = model(IDS[:1]).logits[0]
    for row in range(3):
        torch.testing.assert_close(mixed[row], alone[row], rtol=1e-5, atol=1e-6)
    assert (other - alone[0]).abs().max() > 1e-3  # the preference does change the model


def test_per_sample_rows_must_match_the_batch(tiny_lm_dir):
    model = tiny_svd_model(tiny_lm_dir)
    set_preference(model, torch.tensor(PREFERENCES[:2]))
    with pytest.raises(ValueError, match="2 preference rows for a batch of 3"):
        model(IDS)
    with pytest.raises(ValueError, match=r"expected \(2,\) or \(batch, 2\)"):
        set_preference(model, [0.2, 0.3, 0.5])


def test_forward_without_preference_is_refused(tiny_lm_dir):
    settings = TrainSettings(lora=LoraSettings(r=2, alpha=4, target_modules=["q_proj"]))
    model = SVDLoraAdapter(SVDLoraSpec(2)).build(load_causal_lm(tiny_lm_dir), settings)
    with pytest.raises(RuntimeError, match="set_preference"):
        model(IDS)
    with model.disable_adapter(), torch.no_grad():  # the reference (adapter off) needs none
        model(IDS)


def test_merged_logits_equal_unmerged(tiny_lm_dir):
    model = tiny_svd_model(tiny_lm_dir)
    lam = [0.3, 0.7]
    set_preference(model, lam)
    with torch.no_grad():
        unmerged = model(IDS).logits
        merged_model = merge_preference(model, lam)
        assert not panacea_layers(merged_model) and type(merged_model).__name__ == "LlamaForCausalLM"
        torch.testing.assert_close(merged_model(IDS).logits, unmerged, rtol=1e-4, atol=1e-5)


def test_merge_refuses_a_per_sample_preference(tiny_lm_dir):
    model = tiny_svd_model(tiny_lm_dir)
    with pytest.raises(ValueError, match="one preference vector"):
        merge_preference(model, torch.tensor(PREFERENCES))


def test_save_load_round_trip_gives_identical_logits(tiny_lm_dir, tmp_path):
    adapter = SVDLoraAdapter(SVDLoraSpec(2))
    model = tiny_svd_model(tiny_lm_dir)
    adapter.save(model, tmp_path, base_name=tiny_lm_dir)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved == {"n_preferences": 2, "init": "lora"} and (tmp_path / "adapter_model.safetensors").is_file()
    assert adapter.is_saved(tmp_path) and not SVDLoraAdapter(SVDLoraSpec(2)).is_saved(tiny_lm_dir)
    loaded, base_name = load_model(ModelConfig(name_or_path=str(tmp_path)), adapter)
    assert base_name == tiny_lm_dir
    policy, _ = load_policy(tmp_path)  # the generic loader (evaluation) recognises the folder too
    with torch.no_grad():
        for lam in PREFERENCES:
            for m in (model, loaded, policy):
                set_preference(m, lam)
            expected = model(IDS).logits
            torch.testing.assert_close(loaded(IDS).logits, expected, rtol=0, atol=0)
            torch.testing.assert_close(policy(IDS).logits, expected, rtol=0, atol=0)


def test_lora_loader_refuses_an_svd_lora_folder(tiny_lm_dir, tmp_path):
    SVDLoraAdapter(SVDLoraSpec(2)).save(tiny_svd_model(tiny_lm_dir), tmp_path, base_name=tiny_lm_dir)
    with pytest.raises(ValueError, match="SVD-LoRA.*SVDLoraAdapter"):
        LORA.load(load_causal_lm(tiny_lm_dir), tmp_path)


def test_trainable_load_continues_training(tiny_lm_dir, tmp_path):
    adapter = SVDLoraAdapter(SVDLoraSpec(2))
    adapter.save(tiny_svd_model(tiny_lm_dir), tmp_path, base_name=tiny_lm_dir)
    model = adapter.load(load_causal_lm(tiny_lm_dir), tmp_path, trainable=True)
    assert isinstance(model, PeftModel)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    assert len(trainable) == 4 * 2 * 3  # 4 tensors per layer, 2 decoder layers, 3 target modules


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="n_preferences=0"):
        SVDLoraSpec(0)
    with pytest.raises(ValueError, match="init='x'"):
        SVDLoraSpec(2, init="x")
    with pytest.raises(ValueError, match="rank=-1"):
        svd_lora_config(SVDLoraSpec(2), rank=-1, alpha=1)


def test_only_preference_singular_values(tiny_lm_dir):
    """k = 0: the whole adapter is s * lambda-weighted (r = m)."""
    model, layer = one_layer(rank=0)
    randomise(model)
    set_preference(model, [1.0, 0.0])
    a, b, s = layer.lora_A["default"], layer.lora_B["default"], layer.lora_pref_scale["default"]
    expected = s[0] * torch.outer(b[:, 0], a[0]) * (10.0 / 2)
    torch.testing.assert_close(layer.get_delta_weight("default"), expected)
    assert isinstance(layer, PanaceaLinear) and layer.n_general == 0


def test_trl_peft_config_plumbing_builds_svd_lora_layers(tiny_lm_dir, tmp_path):
    """TRL's trainers take the registered LoraConfig as ``peft_config`` and wrap the model with it."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = svd_lora_config(SVDLoraSpec(2), rank=2, alpha=4, target_modules=["q_proj"])
    data = Dataset.from_dict({"text": ["Hello there, friend."] * 4})
    trainer = SFTTrainer(model=load_causal_lm(tiny_lm_dir), args=SFTConfig(output_dir=str(tmp_path), max_steps=1,
                                                                              report_to=[], use_cpu=True),
                         train_dataset=data, peft_config=config, processing_class=load_tokenizer(tiny_lm_dir))
    layers = panacea_layers(trainer.model)
    assert len(layers) == 2 and all(layer.spec.n_preferences == 2 for layer in layers)


def test_bfloat16_base_keeps_float32_adapter_and_bf16_outputs(tiny_lm_dir):
    settings = TrainSettings(lora=LoraSettings(r=2, alpha=4, target_modules=["q_proj", "v_proj"]))
    model = SVDLoraAdapter(SVDLoraSpec(2)).build(load_causal_lm(tiny_lm_dir, dtype="bfloat16"), settings)
    randomise(model)
    set_preference(model, torch.tensor([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5]]))
    layer = panacea_layers(model)[0]
    assert layer.lora_A["default"].dtype == torch.float32  # PEFT's autocast_adapter_dtype covers the custom layer
    with torch.no_grad():
        logits = model(IDS).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def test_no_grad_diagonal_cache_follows_preference_and_weights():
    """Generation keeps the diagonal between tokens; a new lambda or a changed s / sigma must not be missed."""
    model, layer = one_layer()
    randomise(model)
    x = torch.randn(2, 6)

    def fresh(lam):  # the layer's output computed by hand, no cache
        set_preference(model, lam)
        return layer.get_base_layer()(x) + x @ layer.get_delta_weight("default").T

    with torch.no_grad():
        set_preference(model, [0.2, 0.8])
        first = model(x)
        torch.testing.assert_close(model(x), first)  # served from the cache
        layer.lora_pref_scale["default"].mul_(3.0)  # an in-place update (an optimiser step, a loaded state)
        torch.testing.assert_close(model(x), fresh([0.2, 0.8]))
        layer.lora_E["default"].add_(1.0)
        torch.testing.assert_close(model(x), fresh([0.2, 0.8]))
        set_preference(model, [0.9, 0.1])
        torch.testing.assert_close(model(x), fresh([0.9, 0.1]))
        set_preference(model, torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
        mixed = model(x)
        torch.testing.assert_close(mixed[1], fresh([0.2, 0.8])[1])


def test_sft_refuses_to_continue_an_svd_lora_folder_as_lora(tiny_lm_dir, tmp_path):
    from moalign.train.sft import train_sft

    SVDLoraAdapter(SVDLoraSpec(2)).save(tiny_svd_model(tiny_lm_dir), tmp_path / "svd", base_name=tiny_lm_dir)
    with pytest.raises(ValueError, match="SVD-LoRA"):
        train_sft(tmp_path / "svd", ["Q?"], ["A."], TrainSettings(max_steps=1), tmp_path / "out", seed=0)
