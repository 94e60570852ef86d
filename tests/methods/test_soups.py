"""The soups method: its config, its stages (the DPO method's own), and its policy family (one base load for
every w, saved and rebuilt from a moved run folder, bad inputs refused before anything loads)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from moalign.config import ConfigError
from moalign.eval.family import CheckpointFamily, PolicyFamily, load_family, save_family
from moalign.methods.dpo_lw import DPOConfig
from moalign.methods.registry import get_method, method_config
from moalign.methods.soups import SoupFamily, SoupsConfig, family_from_description, train_soups

TEXT = "\n\nHuman: Can you help me?\n\nAssistant: Sure."


def _lora_expert(base_dir: str, folder: Path, seed: int) -> str:
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(20.0)
    model.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def run_with_experts(tiny_lm_dir, tmp_path_factory):
    """A run folder whose train/ stages hold two LoRA experts, as `moalign train soups` leaves them."""
    root = tmp_path_factory.mktemp("soup_run")
    train = root / "train"
    train.mkdir()
    folders = [_lora_expert(tiny_lm_dir, train / "w=1.00,0.00", 1), _lora_expert(tiny_lm_dir, train / "w=0.00,1.00", 2)]
    return root, folders


def _logits(policy) -> torch.Tensor:
    ids = policy.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return policy.model(input_ids=ids).logits


def test_registered_with_an_embedded_config_of_lora_experts():
    spec = get_method("soups")
    assert spec.config_cls is SoupsConfig and spec.train is train_soups
    config = method_config("soups")
    assert isinstance(config.method, SoupsConfig) and isinstance(config.method.experts, DPOConfig)
    assert config.method.mode == "lora_factors" and config.method.experts.train.lora.r == 8
    assert method_config("soups", None, ["method.mode=merged_delta"]).method.mode == "merged_delta"


def test_config_refuses_a_mode_that_cannot_apply_and_a_subset_of_objectives():
    with pytest.raises(ConfigError, match=r"method.experts.train.lora.r=0 .*method.mode=full_weights"):
        method_config("soups", None, ["method.experts.train.lora.r=0"])
    assert method_config("soups", None, ["method.experts.train.lora.r=0", "method.mode=full_weights"]).method.mode == "full_weights"
    with pytest.raises(ConfigError, match="did you mean 'merged_delta'"):
        method_config("soups", None, ["method.mode=merged_deltas"])
    config = method_config("soups", None, ["method.experts.objectives=[brevity]"])
    with pytest.raises(ConfigError, match=r"one expert per task objective \(\['positivity', 'brevity'\]\)"):
        config.method.check_run(config)


def test_train_soups_trains_the_dpo_experts_and_orders_them_by_objective(monkeypatch, run_with_experts):
    _, (first, second) = run_with_experts
    config = method_config("soups", None, ["method.mode=merged_delta"])
    seen = []

    def fake_train_dpo(run_config, run):
        seen.append(run_config)
        return CheckpointFamily("dpo", {(0.0, 1.0): second, (1.0, 0.0): first})  # keys not in objective order

    monkeypatch.setattr("moalign.methods.soups.method.train_dpo", fake_train_dpo)
    family = train_soups(config, run=None)
    assert seen[0].method is config.method.experts and seen[0].model == config.model  # the DPO method's own stages
    assert family.experts == [first, second] and family.mode == "merged_delta"
    assert isinstance(family, PolicyFamily) and family.name == "dpo_soups-merged_delta"


def test_the_base_is_loaded_once_for_every_preference(monkeypatch, run_with_experts):
    _, folders = run_with_experts
    calls = []
    real = AutoModelForCausalLM.from_pretrained

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counting)
    family = SoupFamily(folders, mode="lora_factors", device=None)
    assert calls == []  # building the family reads the expert configs only
    models, logits = set(), {}
    for w in [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0), (0.5, 0.5)]:
        with family.policy(np.array(w)) as policy:
            models.add(id(policy.model))
            logits.setdefault(w, []).append(_logits(policy))
    assert len(calls) == 1 and len(models) == 1
    assert torch.equal(*logits[(0.5, 0.5)])  # the same w again, after other w's: bit for bit
    assert not torch.allclose(logits[(0.0, 1.0)][0], logits[(1.0, 0.0)][0], atol=1e-3)


def test_saved_family_is_rebuilt_from_a_moved_run_folder(run_with_experts, tmp_path):
    root, folders = run_with_experts
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    family = SoupFamily([moved / "train" / Path(f).name for f in folders], mode="merged_delta", device=None)
    save_family(family, moved / "family.json")
    saved = json.loads((moved / "family.json").read_text())
    assert saved["path"] == "train" and saved["experts"] == ["w=1.00,0.00", "w=0.00,1.00"]
    assert saved["mode"] == "merged_delta" and saved["kind"] == "lora" and saved["experts_trained_by"] == "dpo"
    elsewhere = tmp_path / "elsewhere"
    shutil.move(moved, elsewhere)
    loaded = load_family(elsewhere)
    assert isinstance(loaded, SoupFamily) and loaded.experts == [str(elsewhere / "train" / Path(f).name) for f in folders]
    original = SoupFamily(folders, mode="merged_delta", device=None)
    with loaded.policy([0.25, 0.75]) as a, original.policy([0.25, 0.75]) as b:
        assert torch.equal(_logits(a), _logits(b))


def test_bad_families_fail_before_anything_loads(run_with_experts, tmp_path, monkeypatch):
    _, folders = run_with_experts
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("a model was loaded"))
    other = tmp_path / "other"
    shutil.copytree(folders[1], other)
    config = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "org/other"}))
    with pytest.raises(ValueError, match="same base model"):
        SoupFamily([folders[0], other], mode="lora_factors")
    family = SoupFamily(folders, mode="lora_factors")
    with pytest.raises(ValueError, match=r"soup 'soup-lora_factors' preference \[0.2, 0.3, 0.5\] must have exactly 2"):
        with family.policy([0.2, 0.3, 0.5]):
            pass
    with pytest.raises(ValueError, match="lacks \\['experts'\\]"):
        family_from_description({"path": "train", "mode": "lora_factors", "name": "x"})


def test_rewarded_soups_train_one_morlhf_expert_per_objective_and_soup_them(monkeypatch, tmp_path, tiny_lm_dir):
    """Rewarded Soups: the morlhf method's stages at the one-hot preferences, then the soup in objective order."""
    import moalign.methods.soups.method as soups_method
    from moalign.methods.soups import RewardedSoupsConfig, train_rewarded_soups

    seen = {}
    for seed, name in enumerate("ab"):
        _lora_expert(tiny_lm_dir, tmp_path / name, seed)

    def fake_morlhf(config, run, grid):
        seen["grid"] = grid.points.tolist()
        return CheckpointFamily("morlhf", {(0.0, 1.0): str(tmp_path / "b"), (1.0, 0.0): str(tmp_path / "a")})

    monkeypatch.setattr(soups_method, "train_morlhf_models", fake_morlhf)
    config = method_config("rewarded_soups", None, [f"run_dir={tmp_path / 'run'}", f"model.name_or_path={tiny_lm_dir}"])
    assert isinstance(config.method, RewardedSoupsConfig) and config.method.mode == "full_weights"
    family = train_rewarded_soups(config, run=None)
    assert seen["grid"] == [[1.0, 0.0], [0.0, 1.0]]  # the one-hot preferences, whatever eval.grid is
    assert family.experts == [str(tmp_path / "a"), str(tmp_path / "b")]  # positivity's expert, then brevity's
    assert family.name == "rewarded_soups-full_weights" and family.describe()["experts_trained_by"] == "morlhf"


def test_rewarded_soups_config_checks():
    from moalign.methods.morlhf import MORLHFConfig
    from moalign.methods.soups import RewardedSoupsConfig

    with pytest.raises(ConfigError, match="interpolates LoRA factors, but method.experts.train.lora.r=0"):
        RewardedSoupsConfig(mode="lora_factors")  # MORLHF's default experts are full fine-tuned
    with pytest.raises(ConfigError, match="one expert per objective .* leave it null"):
        RewardedSoupsConfig(experts=MORLHFConfig(preferences="list:0.5,0.5"))
