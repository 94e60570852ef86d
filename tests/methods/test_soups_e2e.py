"""DPO Soups (and MOD, on the same experts) end to end through the CLI on the embedded task: train one LoRA DPO expert per objective (the
``dpo`` method's stages), evaluate the soup's front, then switch the mode in the same run folder: the experts
are reused and only the evaluation reruns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e2e_overrides import SMALL_EVAL
from moalign.cli import main
from moalign.eval.family import load_family
from moalign.eval.harness import load_metrics
from moalign.methods.soups import SoupFamily
from moalign.models.load import load_policy

pytestmark = pytest.mark.slow

CONFIG = "configs/embedded/soups.yaml"
SMALL = [
    *SMALL_EVAL,
    "eval.grid=list:1,0;0.5,0.5;0,1",
    "method.experts.pairs.max_pairs_per_objective=24",
    "method.experts.train.max_steps=4",
    "method.experts.train.per_device_train_batch_size=4",
    "method.experts.train.max_length=96",
]
EXPERTS = ["w=1.00,0.00", "w=0.00,1.00"]


def test_cli_trains_the_experts_evaluates_the_soup_and_reuses_the_experts_for_another_mode(tmp_path):
    run_dir = tmp_path / "soups"
    assert main(["train", "soups", CONFIG, f"run_dir={run_dir}", *SMALL]) == 0
    family = load_family(run_dir)
    assert isinstance(family, SoupFamily) and family.name == "dpo_soups-lora_factors" and family.kind == "lora"
    assert family.experts == [str(run_dir / "train" / tag) for tag in EXPERTS]
    metrics = load_metrics(run_dir)["metrics"]
    assert metrics["n_points"]["value"] == 3 and metrics["hypervolume"]["value"] >= 0

    ids = family.soup().tokenizer("\n\nHuman: Tell me a story.\n\nAssistant:", return_tensors="pt")["input_ids"]
    for k, tag in enumerate(EXPERTS):  # the soup at w = e_k is the trained expert itself
        expert, _ = load_policy(run_dir / "train" / tag)
        with family.policy(np.eye(2)[k]) as policy, torch.no_grad():
            assert torch.equal(policy.model(input_ids=ids).logits, expert(input_ids=ids).logits)

    adapter = run_dir / "train" / EXPERTS[0] / "adapter_model.safetensors"
    stamp = adapter.stat().st_mtime_ns
    assert main(["train", "soups", CONFIG, f"run_dir={run_dir}", *SMALL, "method.mode=merged_delta"]) == 0
    assert adapter.stat().st_mtime_ns == stamp  # the experts were not retrained
    assert load_family(run_dir).mode == "merged_delta"
    again = load_metrics(run_dir)
    assert again["family"]["mode"] == "merged_delta" and again["metrics"]["n_points"]["value"] == 3


@pytest.mark.parametrize("method, config", [("soups", CONFIG), ("mod", "configs/embedded/mod.yaml")])
def test_a_killed_expert_stage_resumes_to_the_uninterrupted_weights(tmp_path, preference_hooks, method, config):
    """Soups and MOD train their experts with the dpo method's stages: a run killed after an expert's step-2
    checkpoint resumes at step 3 and ends with the adapter of an uninterrupted run, then is evaluated."""
    from safetensors.torch import load_file

    small = [*SMALL, "method.experts.train.save_steps=2"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", method, config, f"run_dir={straight}", *small, "--no-eval"]) == 0
    fired = preference_hooks.kill_after(2)
    with pytest.raises(preference_hooks.Killed):
        main(["train", method, config, f"run_dir={killed}", *small])
    assert fired and not (killed / "train" / EXPERTS[0]).exists()
    preference_hooks.clear()
    steps = preference_hooks.record_steps()
    assert main(["train", method, config, f"run_dir={killed}", *small]) == 0
    assert steps[fired[0]] == [3, 4]  # resumed after the step-2 checkpoint, not from step 0
    for tag in EXPERTS:
        a = load_file(straight / "train" / tag / "adapter_model.safetensors")
        b = load_file(killed / "train" / tag / "adapter_model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_metrics(killed)["metrics"]["n_points"]["value"] == 3


def test_cli_rewarded_soups_over_morlhf_experts(tmp_path):
    """Rewarded Soups through the CLI: two GRPO experts (w = e_k), the full-weight soup evaluated, and the soup at
    w = e_k is the expert itself."""
    run_dir = tmp_path / "rs"
    small = [*SMALL_EVAL, "eval.grid=list:1,0;0.5,0.5;0,1", "method.experts.max_prompts=16",
             "method.experts.grpo.max_completion_length=8", "method.experts.train.max_steps=2",
             "method.experts.train.per_device_train_batch_size=8"]
    assert main(["train", "rewarded_soups", "configs/embedded/rewarded_soups.yaml", f"run_dir={run_dir}", *small]) == 0
    family = load_family(run_dir)
    assert isinstance(family, SoupFamily) and family.name == "rewarded_soups-full_weights"
    assert load_metrics(run_dir)["metrics"]["n_points"]["value"] == 3
    ids = family.soup().tokenizer("\n\nHuman: Tell me a story.\n\nAssistant:", return_tensors="pt")["input_ids"]
    for k, tag in enumerate(EXPERTS):
        expert, _ = load_policy(run_dir / "train" / tag)
        with family.policy(np.eye(2)[k]) as policy, torch.no_grad():
            torch.testing.assert_close(policy.model(input_ids=ids).logits, expert(input_ids=ids).logits)
