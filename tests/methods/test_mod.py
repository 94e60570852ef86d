"""The ``mod`` method: its config, its family (persistence, the Policy hook the harness calls) and, slow, the CLI
end to end on the embedded task (DPO experts trained by the ``dpo`` stages, every preference decoded by MOD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from e2e_overrides import SMALL_EVAL
from moalign.config import ConfigError, GenerationSettings
from moalign.eval.family import load_family, save_family
from moalign.eval.generate import generate
from moalign.methods.mod import MODConfig, MODFamily
from moalign.methods.registry import get_method, method_config

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Hi\n\nAssistant:"]


@pytest.fixture(scope="module")
def expert_dirs(lora_experts):
    return lora_experts


def test_registered_with_its_embedded_config():
    spec = get_method("mod")
    assert spec.config_cls is MODConfig
    config = method_config("mod")
    assert config.method.rule == "reverse_kl" and config.method.scores == "cumulative"
    assert config.method.experts.train.lora.r > 0  # LoRA experts: the batched path


@pytest.mark.parametrize("fields, message", [({"rule": "jsd"}, "method.rule='jsd'"),
                                             ({"rule": "alpha", "alpha": 0.0}, "method.alpha=0.0"),
                                             ({"scores": "sum"}, "method.scores='sum'")])
def test_bad_options_name_the_field(fields, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        MODConfig(**fields)


def test_a_subset_of_objectives_is_refused():
    config = method_config("mod", overrides=["method.experts.objectives=[brevity]"])
    with pytest.raises(ConfigError, match="one expert per task objective"):
        config.method.check_run(config)


def test_policy_decodes_through_the_generation_hook(expert_dirs):
    family = MODFamily(expert_dirs, rule="forward_kl", scores="per_token")
    settings = GenerationSettings(do_sample=False, max_new_tokens=8, stop_strings=[])
    with family.policy(np.array([1.0, 0.0])) as policy:
        assert policy.generate is not None
        mod = generate(policy.model, policy.tokenizer, PROMPTS, settings, generate_fn=policy.generate)
        policy.model.set_adapter("expert0")
        assert mod == generate(policy.model, policy.tokenizer, PROMPTS, settings)  # w = e_1: the first expert
    with family.policy(np.array([0.5, 0.5])) as policy:
        assert generate(policy.model, policy.tokenizer, PROMPTS, settings, generate_fn=policy.generate) != mod
    with pytest.raises(ValueError, match="has 2 experts"), family.policy(np.array([1.0, 0.0, 0.0])):
        pass


def test_family_round_trips_through_family_json(expert_dirs):
    run_root = Path(expert_dirs[0]).parent.parent
    family = MODFamily(expert_dirs, rule="alpha", alpha=0.3, scores="per_token", batched=False)
    save_family(family, run_root / "family.json")
    text = (run_root / "family.json").read_text()
    assert str(run_root) not in text  # saved relative to the run folder
    loaded = load_family(run_root)
    assert isinstance(loaded, MODFamily)
    assert [Path(p).resolve() for p in loaded.experts] == [Path(p).resolve() for p in expert_dirs]
    assert (loaded.rule, loaded.alpha, loaded.scores, loaded.batched) == ("alpha", 0.3, "per_token", False)


@pytest.mark.slow
def test_cli_trains_the_experts_and_evaluates_the_mod_front(tmp_path):
    from moalign.cli import main
    from moalign.eval.harness import load_metrics

    run_dir = tmp_path / "mod"
    small = [*SMALL_EVAL, "eval.grid=list:1,0;0.5,0.5;0,1",
             "method.experts.pairs.max_pairs_per_objective=24", "method.experts.train.max_steps=3",
             "method.experts.train.per_device_train_batch_size=4", "method.experts.train.max_length=96"]
    assert main(["train", "mod", "configs/embedded/mod.yaml", f"run_dir={run_dir}", *small]) == 0
    assert (run_dir / "train" / "w=1.00,0.00" / "adapter_config.json").is_file()  # the dpo method's stages
    family = load_family(run_dir)
    assert isinstance(family, MODFamily) and family.name == "mod-reverse_kl" and len(family.experts) == 2
    metrics = load_metrics(run_dir)["metrics"]
    assert metrics["n_points"]["value"] == 3
    assert metrics["hypervolume"]["value"] >= 0
