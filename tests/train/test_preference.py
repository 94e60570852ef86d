"""The shared preference trainer: DPO loss numbers, reference modes, gradient accumulation, resume."""

from __future__ import annotations

import math

import pytest
import torch

from bread_pairs import PAIRS
from moalign.config import LoraSettings, TrainSettings
from moalign.methods.mgda import MGDAWeighting
from moalign.train.losses import dpo_loss, dpo_pair_loss
from moalign.train.preference_run import build_preference_trainer
from moalign.train.weighting import FixedWeights
from stop_at import StopAt


def make(tmp_path, tiny_lm_dir, weighting, *, batch=4, ga=1, steps=2, lora=0, reference="precomputed", sub="run",
         save_steps=0, pairs=None, **kwargs):
    settings = TrainSettings(learning_rate=0.05, max_steps=steps, per_device_train_batch_size=batch,
                             gradient_accumulation_steps=ga, logging_steps=1, save_steps=save_steps, max_length=48, max_grad_norm=0.0,
                             lora=LoraSettings(r=lora, alpha=2 * lora if lora else 16.0))
    overrides = {"optim": "sgd", "disable_tqdm": True, "lr_scheduler_type": "constant"}
    return build_preference_trainer(tiny_lm_dir, pairs or PAIRS, loss_fn=dpo_pair_loss(0.5), weighting=weighting,
                                    settings=settings, output_dir=tmp_path / sub, seed=0, reference=reference,
                                    training_overrides=overrides, **kwargs)


def params(trainer) -> dict:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def first_batch(trainer, n=3):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(n)])


def test_dpo_loss_hand_computed():
    t = torch.tensor
    # gap = (-1 - -1.5) - (-2 - -1.5) = 1.0; beta 0.5 -> -log sigmoid(0.5)
    assert dpo_loss(t([-1.0]), t([-2.0]), t([-1.5]), t([-1.5]), 0.5).item() == pytest.approx(0.474077, abs=1e-6)
    # gap = (-5 - -4) - (-3 - -5) = -3; beta 0.1 -> log(1 + e^0.3)
    assert dpo_loss(t([-5.0]), t([-3.0]), t([-4.0]), t([-5.0]), 0.1).item() == pytest.approx(math.log1p(math.exp(0.3)))
    assert dpo_loss(t([-2.0]), t([-2.0]), t([-2.0]), t([-2.0]), 1.0).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(t([0.0]), t([0.0]), t([0.0]), t([0.0]), 0.0)


def test_three_reference_modes_give_the_same_loss(tmp_path, tiny_lm_dir):
    losses = {}
    for mode in ("precomputed", "model", "adapter"):
        trainer = make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]), lora=4, reference=mode, sub=mode)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():  # move the policy away from the reference, identically in every mode
            for name, p in trainer.model.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.3 * torch.randn(p.shape, generator=gen))
        batch = first_batch(trainer)
        losses[mode] = [trainer.objective_loss(trainer.model, b, k)[0].item() for k, b in enumerate(batch["objectives"])]
    assert losses["precomputed"][0] != pytest.approx(math.log(2), abs=1e-3)  # the policy really moved
    for mode in ("model", "adapter"):
        assert losses[mode] == pytest.approx(losses["precomputed"], abs=1e-5)


def test_adapter_reference_needs_lora(tmp_path, tiny_lm_dir):
    with pytest.raises(ValueError, match="LoRA"):
        make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]), reference="adapter")


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, tiny_lm_dir):
    # MGDA's weights come from the gradient accumulated over the micro-batches, so 2 x 2 == 1 x 4 exactly
    big = make(tmp_path, tiny_lm_dir, MGDAWeighting("decoupled", 2), batch=4, ga=1, steps=1, sub="big")
    small = make(tmp_path, tiny_lm_dir, MGDAWeighting("decoupled", 2), batch=2, ga=2, steps=1, sub="small")
    start = params(big)
    big.train()
    small.train()
    a, b = params(big), params(small)
    assert any(not torch.equal(a[n], start[n]) for n in a)
    for n in a:
        torch.testing.assert_close(a[n], b[n], atol=1e-6, rtol=1e-5)
    assert big.history[0]["weight/helpful"] == pytest.approx(small.history[0]["weight/helpful"], abs=1e-5)
    assert len(small.history) == 1  # one row per optimiser step


def test_uniform_gradient_path_equals_linear_path(tmp_path, tiny_lm_dir):
    linear = make(tmp_path, tiny_lm_dir, MGDAWeighting("uniform", 2), steps=2, sub="lin")
    grads = make(tmp_path, tiny_lm_dir, MGDAWeighting("uniform", 2), steps=2, sub="grad", per_objective_gradients=True)
    assert not linear.gradient_path and grads.gradient_path
    linear.train()
    grads.train()
    a, b = params(linear), params(grads)
    for n in a:
        torch.testing.assert_close(a[n], b[n], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["decoupled", "groupdro"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, tiny_lm_dir, mode):
    kwargs = {"steps": 4, "save_steps": 2, "batch": 2}
    full = make(tmp_path, tiny_lm_dir, MGDAWeighting(mode, 2, eta=0.5), sub="full", **kwargs)
    full.train()
    cut = make(tmp_path, tiny_lm_dir, MGDAWeighting(mode, 2, eta=0.5), sub="cut", **kwargs)
    cut.add_callback(StopAt(2))
    cut.train()
    assert cut.state.global_step == 2
    resumed = make(tmp_path, tiny_lm_dir, MGDAWeighting(mode, 2, eta=0.5), sub="cut", **kwargs)
    resumed.train(resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-2"))
    a, b = params(full), params(resumed)
    for n in a:
        torch.testing.assert_close(a[n], b[n], atol=0, rtol=0)
    assert [r["weight/helpful"] for r in resumed.history] == [r["weight/helpful"] for r in full.history]
    logged = [row for row in full.state.log_history if "loss/helpful" in row]
    assert len(logged) == 4 and "weight/brief" in logged[0]  # per-objective losses and weights every step


def test_run_level_reference_cache_matches_the_trainers_own(tmp_path, tiny_lm_dir):
    from moalign.train.reference import pairset_reference_logps

    cached = pairset_reference_logps(tiny_lm_dir, PAIRS, max_length=48)
    trainer = make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]))
    for k, name in enumerate(trainer.train_dataset.objectives):
        assert cached[name].shape == (len(PAIRS[name]), 2)
        torch.testing.assert_close(trainer.train_dataset.get_column(k, "ref_chosen"), cached[name][:, 0])
        torch.testing.assert_close(trainer.train_dataset.get_column(k, "ref_rejected"), cached[name][:, 1])
    columns = {n: {"ref_chosen": cached[n][:, 0] + 1.0, "ref_rejected": cached[n][:, 1]} for n in PAIRS}
    given = make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]), sub="given", columns=columns)
    assert given.train_dataset.get_column(0, "ref_chosen") == pytest.approx(cached["helpful"][:, 0] + 1.0)


# ------------------------------------------------------------------ starting points and chosen references


def _lora_weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_start_from_a_saved_adapter_continues_from_its_weights(tmp_path, tiny_lm_dir):
    from safetensors.torch import load_file

    from moalign.models.adapters import LORA
    from moalign.train.preference_run import train_preference

    first = make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]), lora=4, sub="first", steps=3)
    first.train()
    saved = tmp_path / "adapter"
    LORA.save(first.model, saved, base_name=tiny_lm_dir)
    first.processing_class.save_pretrained(saved)
    trained = _lora_weights(first.model)
    assert any(float(v.abs().max()) > 0 for n, v in trained.items() if "lora_B" in n)  # the adapter moved

    one_step = TrainSettings(learning_rate=0.05, max_steps=1, per_device_train_batch_size=4, max_length=48,
                             max_grad_norm=0.0)  # lora.r = 0: the settings add no new adapter
    common = {"loss_fn": dpo_pair_loss(0.5), "weighting": FixedWeights([0.5, 0.5]), "settings": one_step, "seed": 0,
              "training_overrides": {"optim": "sgd", "disable_tqdm": True}}
    cont = build_preference_trainer(str(saved), PAIRS, output_dir=tmp_path / "cont", **common)
    assert LORA.is_attached(cont.model)
    start = _lora_weights(cont.model)
    assert start.keys() == trained.keys()
    for n in start:
        torch.testing.assert_close(start[n], trained[n], atol=0, rtol=0)
        assert dict(cont.model.named_parameters())[n].requires_grad
    # precomputed without a ref model: the starting policy (base + saved adapter) is the reference
    batch = first_batch(cont)
    assert cont.objective_loss(cont.model, batch["objectives"][0], 0)[0].item() == pytest.approx(math.log(2), abs=1e-5)
    # reference='adapter' is the base (adapter off): the same as the base model given as the reference
    off = build_preference_trainer(str(saved), PAIRS, output_dir=tmp_path / "off", reference="adapter", **common)
    base = build_preference_trainer(str(saved), PAIRS, output_dir=tmp_path / "base", ref_model=tiny_lm_dir, **common)
    loss_off = off.objective_loss(off.model, first_batch(off)["objectives"][0], 0)[0].item()
    loss_base = base.objective_loss(base.model, first_batch(base)["objectives"][0], 0)[0].item()  # its own columns
    assert loss_off != pytest.approx(math.log(2), abs=1e-3)
    assert loss_off == pytest.approx(loss_base, abs=1e-5)
    out = train_preference(str(saved), PAIRS, save_dir=tmp_path / "out", **common)
    assert LORA.base_name(out) == tiny_lm_dir  # still names the original base, not the adapter folder
    after = load_file(out / "adapter_model.safetensors")
    assert any(not torch.equal(after[k], v) for k, v in load_file(saved / "adapter_model.safetensors").items())


def test_reference_model_chosen_by_the_caller(tmp_path, tiny_lm_dir):
    from moalign.config import ModelConfig
    from moalign.models.load import load_causal_lm

    ref = load_causal_lm(tiny_lm_dir)
    with torch.no_grad():  # a reference that is not the starting policy
        gen = torch.Generator().manual_seed(3)
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    ref.save_pretrained(tmp_path / "ref")
    losses = {}
    for name, mode, given in [("default", "precomputed", None), ("model-folder", "model", str(tmp_path / "ref")),
                              ("model-module", "model", ref), ("precomputed-config", "precomputed",
                                                                ModelConfig(name_or_path=str(tmp_path / "ref")))]:
        trainer = make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]), reference=mode, sub=name, ref_model=given)
        batch = first_batch(trainer)
        losses[name] = [trainer.objective_loss(trainer.model, b, k)[0].item() for k, b in enumerate(batch["objectives"])]
    assert losses["default"] == pytest.approx([math.log(2)] * 2, abs=1e-6)  # the start is its own reference
    assert losses["model-folder"][0] != pytest.approx(math.log(2), abs=1e-3)
    assert losses["model-module"] == pytest.approx(losses["model-folder"], abs=1e-6)
    assert losses["precomputed-config"] == pytest.approx(losses["model-folder"], abs=1e-5)


def test_start_from_a_merged_model(tmp_path, tiny_lm_dir):
    first = make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]), lora=4, sub="first", steps=2)
    first.train()
    merged = first.model.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    first.processing_class.save_pretrained(tmp_path / "merged")
    trainer = make(tmp_path, str(tmp_path / "merged"), FixedWeights([0.5, 0.5]), lora=4, sub="from-merged")
    base = {n.replace("base_model.model.", "").replace("base_layer.", ""): p for n, p in trainer.model.named_parameters()
            if "lora_" not in n}
    for n, p in merged.named_parameters():
        torch.testing.assert_close(base[n], p, atol=0, rtol=0)


def _engine(*, fsdp=False, fsdp2=False, zero_stage=None, grad_layers=0, fp16=False):
    """The attributes the gradient-path check reads, as a trainer under that engine would have them."""
    from types import SimpleNamespace

    return SimpleNamespace(gradient_path=True, is_fsdp_enabled=fsdp, _fsdp2=fsdp2, _zero_stage=lambda: zero_stage,
                           grad_layers=grad_layers, args=SimpleNamespace(fp16=fp16))


@pytest.mark.parametrize(("engine", "reason"), [
    (dict(zero_stage=3), "DeepSpeed ZeRO-3 splits every parameter"),
    (dict(fsdp=True), "FSDP1 splits every parameter .* set fsdp_version: 2"),
    (dict(fsdp=True, fsdp2=True, grad_layers=1), "grad_layers > 0 .* use grad_layers=0 under FSDP2"),
    (dict(fp16=True), "fp16 loss scaling"),
])
def test_the_gradient_path_refuses_the_engines_it_cannot_read_gradients_from(engine, reason):
    from moalign.train.preference import MultiObjectivePreferenceTrainer

    with pytest.raises(ValueError, match=reason):
        MultiObjectivePreferenceTrainer._check_gradient_path_support(_engine(**engine))


@pytest.mark.parametrize("engine", [dict(), dict(zero_stage=1), dict(zero_stage=2), dict(fsdp=True, fsdp2=True)])
def test_the_gradient_path_runs_under_ddp_zero_1_2_and_fsdp2(engine):
    from moalign.train.preference import MultiObjectivePreferenceTrainer

    assert MultiObjectivePreferenceTrainer._check_gradient_path_support(_engine(**engine)) is None


def test_the_gram_matrix_is_accumulated_in_float64_over_column_blocks():
    from moalign.train.gradients import gram_matrix

    rows = torch.randn(3, 23, generator=torch.Generator().manual_seed(0))
    exact = rows.double() @ rows.double().T
    for block in (1, 5, 23, 1 << 22):  # blocks that split the columns unevenly, and one block for all
        gram = gram_matrix(rows, block=block)
        assert gram.dtype == torch.float64 and torch.allclose(gram, exact, rtol=0, atol=1e-12)
