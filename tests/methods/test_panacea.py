"""Panacea on the preference trainer: LS and Tchebycheff steps of the DPO and the SFT variant against
hand-computed losses, lambda written into the SVD-LoRA before every forward (per step, pair or response),
the family, and the config checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bread_pairs import PAIRS, RESPONSES
from moalign.config import ConfigError, LoraSettings, TrainSettings, load_run_config
from moalign.eval.family import load_family, save_family
from moalign.methods.panacea import (
    PanaceaConfig,
    PanaceaFamily,
    aggregation_weighting,
    objective_loss_fn,
    schedule_of,
    stage_name,
)
from moalign.methods.panacea.method import _hashed_fields
from moalign.models.adapters import SVDLoraAdapter
from moalign.models.svd_lora import SVDLoraSpec, panacea_layers, set_preference
from moalign.pipeline import inputs_hash
from moalign.train.logps import pair_logps
from moalign.train.losses import PairLogps, dpo_pair_loss
from moalign.train.online import GRPOSettings
from moalign.train.preference_run import build_preference_trainer, build_response_trainer, train_preference

OVERRIDES = {"optim": "sgd", "disable_tqdm": True, "lr_scheduler_type": "constant"}
BETA = 0.5


def method(**changes) -> PanaceaConfig:
    train = TrainSettings(learning_rate=0.05, max_steps=2, per_device_train_batch_size=3, logging_steps=1,
                          max_length=48, max_grad_norm=0.0,
                          lora=LoraSettings(r=2, alpha=4.0, target_modules=["q_proj", "v_proj", "down_proj"]))
    return dataclasses.replace(PanaceaConfig(beta=BETA, train=train), **changes)


def panacea_trainer(folder, tiny_lm_dir, config: PanaceaConfig, seed=3, loss_fn=None, **extra):
    return build_preference_trainer(
        tiny_lm_dir, PAIRS, output_dir=folder, loss_fn=loss_fn or dpo_pair_loss(config.beta),
        weighting=aggregation_weighting(config), schedule=schedule_of(config, seed), model_hook=set_preference,
        adapter=SVDLoraAdapter(SVDLoraSpec(2, init=config.init)), settings=config.train, seed=0,
        training_overrides=OVERRIDES, **extra,
    )


def randomise(model, seed=1):
    """Non-zero adapter weights, so that lambda changes the model (at init it is the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in panacea_layers(model):
            for params in (layer.lora_A, layer.lora_B, layer.lora_E, layer.lora_pref_scale):
                params["default"].copy_(0.3 * torch.randn(params["default"].shape, generator=g))


def objective_losses(trainer, batch, lam) -> torch.Tensor:
    """L_k by hand: lambda written by hand, one forward per objective, DPO against the precomputed reference."""
    set_preference(trainer.model, lam)
    losses = []
    with torch.no_grad():
        for k, sub in enumerate(batch["objectives"]):
            out = pair_logps(trainer.model, sub)
            logps = PairLogps(out.chosen, out.rejected, sub["ref_chosen"], sub["ref_rejected"])
            losses.append(dpo_pair_loss(BETA)(logps, k, None).mean())
    return torch.stack(losses).double()


@pytest.mark.parametrize("aggregation, z", [("ls", None), ("tche", None), ("tche", [0.9, 0.0])])
def test_a_step_is_the_hand_computed_aggregation(tmp_path, tiny_lm_dir, aggregation, z):
    config = method(aggregation=aggregation, tche_z=z)
    trainer = panacea_trainer(tmp_path / "t", tiny_lm_dir, config)
    randomise(trainer.model)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    lam = torch.from_numpy(schedule_of(config, 3).draw(0, 2))
    losses = objective_losses(trainer, batch, lam)
    total = trainer.training_step(trainer.model, batch)
    assert float(total) == pytest.approx(expected_aggregation(aggregation, lam, losses, z), rel=1e-5)
    for layer in panacea_layers(trainer.model):  # the hook wrote the step's lambda everywhere
        assert torch.equal(layer._preference, lam.float())


def expected_aggregation(aggregation, lam, losses, z=None) -> float:
    if aggregation == "ls":
        return float(lam @ losses)
    gaps = lam * (losses - torch.tensor(z or [0.0, 0.0], dtype=torch.float64))
    return float(lam[gaps.argmax()] * losses[gaps.argmax()])  # the subgradient's objective, weighted


def sft_trainer(folder, tiny_lm_dir, config: PanaceaConfig, seed=3):
    return build_response_trainer(
        tiny_lm_dir, RESPONSES, output_dir=folder, loss_fn=objective_loss_fn(config),
        weighting=aggregation_weighting(config), schedule=schedule_of(config, seed), model_hook=set_preference,
        adapter=SVDLoraAdapter(SVDLoraSpec(2, init=config.init)), settings=config.train, seed=0,
        training_overrides=OVERRIDES,
    )


@pytest.mark.parametrize("aggregation, z", [("ls", None), ("tche", None), ("tche", [5.0, 0.0])])
def test_an_sft_step_is_the_hand_computed_aggregation_of_nlls(tmp_path, tiny_lm_dir, aggregation, z):
    config = method(variant="sft", aggregation=aggregation, tche_z=z)
    trainer = sft_trainer(tmp_path / "s", tiny_lm_dir, config)
    randomise(trainer.model)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    lam = torch.from_numpy(schedule_of(config, 3).draw(0, 2))
    set_preference(trainer.model, lam)
    with torch.no_grad():  # NLL_k by hand: transformers' causal-LM loss on objective k's responses
        losses = torch.stack([trainer.model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"],
                                            labels=sub["labels"]).loss for sub in batch["objectives"]]).double()
    set_preference(trainer.model, None)
    total = trainer.training_step(trainer.model, batch)
    assert float(total) == pytest.approx(expected_aggregation(aggregation, lam, losses, z), rel=1e-5)
    for layer in panacea_layers(trainer.model):
        assert torch.equal(layer._preference, lam.float())


def test_a_per_response_lambda_is_written_once_per_row(tmp_path, tiny_lm_dir):
    trainer = sft_trainer(tmp_path / "s", tiny_lm_dir, method(variant="sft", per_sample=True))
    trainer.training_step(trainer.model, trainer.data_collator([trainer.train_dataset[i] for i in range(3)]))
    written = panacea_layers(trainer.model)[0]._preference
    assert written.shape == (3, 2)  # one row per response (a pair batch writes 2 x 3)
    torch.testing.assert_close(written, trainer._w.float())


def test_per_pair_lambda_reaches_both_responses_of_each_pair(tmp_path, tiny_lm_dir):
    config = method(per_sample=True)
    seen = []

    def loss_fn(logps, k, w):
        seen.append((w.clone(), panacea_layers(trainer.model)[0]._preference.clone()))
        return dpo_pair_loss(BETA)(logps, k, w)

    trainer = panacea_trainer(tmp_path / "p", tiny_lm_dir, config, loss_fn=loss_fn)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    trainer.training_step(trainer.model, batch)
    w, written = seen[0]
    assert w.shape == (3, 2) and written.shape == (6, 2)  # 3 chosen rows, then the same 3 pairs' rejected rows
    torch.testing.assert_close(written, torch.cat([w, w]).float())
    assert len({tuple(row) for row in w.tolist()}) == 3  # one lambda per pair


def test_training_makes_the_one_model_depend_on_lambda(tmp_path, tiny_lm_dir):
    config = method(train=dataclasses.replace(method().train, max_steps=6))
    save_dir = train_preference(
        tiny_lm_dir, PAIRS, save_dir=tmp_path / "model", loss_fn=dpo_pair_loss(BETA),
        weighting=aggregation_weighting(config), schedule=schedule_of(config, 3), model_hook=set_preference,
        adapter=SVDLoraAdapter(SVDLoraSpec(2)), settings=config.train, seed=0, training_overrides=OVERRIDES,
    )
    family = PanaceaFamily(save_dir, 2)
    ids = torch.tensor([[5, 9, 13, 2, 7, 11]])
    with torch.no_grad():
        logits = []
        for w in ([1.0, 0.0], [0.0, 1.0]):
            with family.policy(w) as policy:
                logits.append(policy.model(ids).logits)
    assert (logits[0] - logits[1]).abs().max() > 1e-4  # lambda steers the trained model
    with pytest.raises(RuntimeError, match="set_preference"):  # lambda is unset outside policy(w)
        family._loaded[0](ids)


def test_family_round_trip_and_bad_preference(tmp_path, tiny_lm_dir):
    family = PanaceaFamily(tmp_path / "model", 2, name="panacea-ls")
    saved = save_family(family, tmp_path / "family.json")
    again = load_family(saved)
    assert isinstance(again, PanaceaFamily) and again.describe() == family.describe()
    with pytest.raises(ValueError, match="trained for 2 objectives"), again.policy([0.2, 0.3, 0.5]):
        pass


def test_config_checks():
    with pytest.raises(ConfigError, match="per_sample=true with method.aggregation='tche'"):
        PanaceaConfig(aggregation="tche", per_sample=True)
    with pytest.raises(ConfigError, match="did you mean 'tche'"):
        PanaceaConfig(aggregation="tch")
    with pytest.raises(ConfigError, match="method.dirichlet_alpha=0"):
        PanaceaConfig(dirichlet_alpha=0)
    with pytest.raises(ConfigError, match=r"method.tche_z\[1\]"):
        PanaceaConfig(tche_z=[0.0, float("nan")])
    with pytest.raises(ConfigError, match="method.init="):
        PanaceaConfig(init="kaiming")
    with pytest.raises(ConfigError, match="method.variant='ppo'.*dpo, sft, rlhf"):
        PanaceaConfig(variant="ppo")
    with pytest.raises(ConfigError, match="did you mean 'sequence'"):
        PanaceaConfig(variant="sft", nll_normalisation="sequences")
    config = load_run_config("configs/embedded/panacea.yaml", ["method.tche_z=[0,0,0]"], method_cls=PanaceaConfig)
    with pytest.raises(ConfigError, match="tche_z has 3 entries"):
        config.method.check_run(config)


def test_the_rlhf_variant_refuses_tche_and_per_sample_and_checks_its_fields():
    with pytest.raises(ConfigError, match=r"aggregation='tche' with method.variant='rlhf' is not implemented.*"
                                          r"expected rewards.*use method.aggregation=ls"):
        PanaceaConfig(variant="rlhf", aggregation="tche")
    with pytest.raises(ConfigError, match="per_sample=true with method.variant='rlhf'.*per generation batch"):
        PanaceaConfig(variant="rlhf", per_sample=True)
    with pytest.raises(ConfigError, match="grpo.backend=vllm with method.variant='rlhf'.*SVD-LoRA.*backend=hf"):
        load_run_config("configs/embedded/panacea_rlhf.yaml", ["method.grpo.backend=vllm"], method_cls=PanaceaConfig)
    with pytest.raises(ConfigError, match="method.reward_scale='z'.*raw, zscore"):
        PanaceaConfig(variant="rlhf", reward_scale="z")
    with pytest.raises(ConfigError, match="method.max_prompts"):
        PanaceaConfig(variant="rlhf", max_prompts=0)
    with pytest.raises(ConfigError, match=r"grpo.beta=0: MORLHF"):  # GRPOSettings' own check, under method.grpo
        load_run_config("configs/embedded/panacea_rlhf.yaml", ["method.grpo.beta=0"], method_cls=PanaceaConfig)
    config = load_run_config("configs/embedded/panacea_rlhf.yaml", method_cls=PanaceaConfig)
    assert config.method.variant == "rlhf" and stage_name(config.method) == "train/panacea-rlhf-ls"
    assert PanaceaConfig(aggregation="tche").variant == "dpo"  # tche stays valid for the pair variants


def test_the_rlhf_fields_leave_the_dpo_and_sft_stage_hashes_as_they_were():
    """Hashes taken before the rlhf variant existed: finished dpo / sft stages are not retrained."""
    assert inputs_hash({"method": _hashed_fields(PanaceaConfig())}) == "dbe3f1e656e3609d"
    assert inputs_hash({"method": _hashed_fields(PanaceaConfig(variant="sft"))}) == "3bf5e1f122f9fd9f"
    online = {"grpo": GRPOSettings(beta=0.2), "reward_scale": "zscore", "max_prompts": 8}
    for variant in ("dpo", "sft"):  # the online fields are not theirs
        base = PanaceaConfig(variant=variant)
        assert _hashed_fields(dataclasses.replace(base, **online)) == _hashed_fields(base)
    rlhf = _hashed_fields(PanaceaConfig(variant="rlhf"))
    assert {"grpo", "reward_scale", "max_prompts", "train", "dirichlet_alpha", "init"} <= rlhf.keys()
    assert not {"pairs", "beta", "reference", "nll_normalisation", "tche_z", "per_sample"} & rlhf.keys()
    changed = _hashed_fields(PanaceaConfig(variant="rlhf", grpo=GRPOSettings(beta=0.2)))
    assert inputs_hash({"method": changed}) != inputs_hash({"method": rlhf})
