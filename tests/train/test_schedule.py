"""The preference schedule: pure draws, the model hook and loss seeing the step's w, exact kill and resume,
and the Tchebycheff aggregation it feeds."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from bread_pairs import PAIRS
from moalign.config import ConfigError, TrainSettings
from moalign.train.checkpoints import COMPLETE_FILE
from moalign.train.losses import dpo_pair_loss
from moalign.train.preference_run import HISTORY_FILE, build_preference_trainer, train_preference
from moalign.train.schedule import PreferenceSchedule
from moalign.train.weighting import FixedWeights, PreferenceWeights, TchebycheffWeights

OVERRIDES = {"optim": "sgd", "disable_tqdm": True, "lr_scheduler_type": "constant"}


def settings(steps=2, batch=2, save_steps=0):
    return TrainSettings(learning_rate=0.05, max_steps=steps, per_device_train_batch_size=batch, logging_steps=1,
                         save_steps=save_steps, max_length=48, max_grad_norm=0.0)


def kwargs(schedule, steps=2, batch=2, save_steps=0, **extra):
    return {"loss_fn": dpo_pair_loss(0.5), "settings": settings(steps, batch, save_steps), "seed": 0,
            "schedule": schedule, "training_overrides": OVERRIDES, **extra}


# ------------------------------------------------------------------ the schedule itself


def test_draws_are_a_pure_function_of_seed_and_step():
    s = PreferenceSchedule(alpha=1.0, seed=7)
    a = np.stack([s.draw(step, 3) for step in range(50)])
    assert np.allclose(a.sum(axis=1), 1.0) and (a >= 0).all()
    assert np.array_equal(a, np.stack([PreferenceSchedule(alpha=1.0, seed=7).draw(step, 3) for step in range(50)]))
    assert len({tuple(row) for row in a}) == 50  # a new w every step
    assert not np.array_equal(a, np.stack([PreferenceSchedule(seed=8).draw(step, 3) for step in range(50)]))
    assert np.array_equal(s.draw(3, 3), np.random.default_rng([7, 3]).dirichlet([1.0] * 3))  # documented seeding


def test_alpha_sets_the_concentration():
    def spread(alpha):
        draws = np.stack([PreferenceSchedule(alpha=alpha, seed=0).draw(step, 2) for step in range(400)])
        return float(np.abs(draws[:, 0] - 0.5).mean())

    assert spread(100.0) < 0.05 < 0.2 < spread(1.0) < 0.3 < 0.45 < spread(0.05)  # uniform: E|u - 0.5| = 0.25
    tilted = np.stack([PreferenceSchedule(alpha=(9.0, 1.0), seed=0).draw(step, 2) for step in range(400)])
    assert tilted[:, 0].mean() == pytest.approx(0.9, abs=0.02)


def test_per_sample_rows_and_fixed():
    s = PreferenceSchedule(per_sample=True, seed=1)
    w = s.draw(4, 2, rows=5, micro=1)
    assert w.shape == (5, 2) and np.allclose(w.sum(axis=1), 1.0) and len({tuple(r) for r in w}) == 5
    assert np.array_equal(w, s.draw(4, 2, rows=5, micro=1))
    assert not np.array_equal(w, s.draw(4, 2, rows=5, micro=0))  # micro-batches of a step differ
    assert PreferenceSchedule.fixed([0.2, 0.8]).draw(9, 2).tolist() == [0.2, 0.8]
    with pytest.raises(ValueError, match="pass rows"):
        s.draw(0, 2)


@pytest.mark.parametrize("kw,match", [
    ({"kind": "uniform"}, "schedule.kind"),
    ({"alpha": 0.0}, "schedule.alpha"),
    ({"alpha": (1.0, -1.0)}, "schedule.alpha"),
    ({"kind": "fixed"}, "needs schedule.w"),
    ({"kind": "fixed", "w": (0.5, 0.6)}, "schedule.w"),
])
def test_bad_schedules_fail_at_construction(kw, match):
    with pytest.raises(ConfigError, match=match):
        PreferenceSchedule(**kw)


def test_schedule_state_and_length_checks():
    s = PreferenceSchedule(alpha=(1.0, 2.0), seed=3)
    s.check_state(s.state_dict())
    with pytest.raises(ValueError, match="preference schedule"):
        s.check_state(PreferenceSchedule(alpha=(1.0, 2.0), seed=4).state_dict())
    with pytest.raises(ValueError, match="2 entries for 3 objectives"):
        s.draw(0, 3)


# ------------------------------------------------------------------ in the trainer


def test_hook_and_loss_see_the_steps_w_and_it_weights_the_objectives(tmp_path, tiny_lm_dir):
    seen = []
    losses = []

    def hook(model, w):
        assert isinstance(model, torch.nn.Module)
        seen.append(w.clone())

    def loss_fn(logps, k, w):
        assert seen and torch.equal(w, seen[-1])  # the hook ran before this forward, with the same w
        losses.append(k)
        return dpo_pair_loss(0.5)(logps, k, w)

    schedule = PreferenceSchedule(alpha=1.0, seed=5)
    trainer = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "s", model_hook=hook,
                                       **{**kwargs(schedule, steps=3), "loss_fn": loss_fn})
    assert isinstance(trainer.weighting, PreferenceWeights)  # the default with a schedule
    trainer.train()
    assert [w.tolist() for w in seen] == [schedule.draw(step, 2).tolist() for step in range(3)]
    assert losses == [0, 1] * 3
    rows = trainer.history
    assert [r["w/helpful"] for r in rows] == [r["weight/helpful"] for r in rows] == [float(w[0]) for w in seen]

    # step 1 with the scheduled w is exactly a step with that w fixed: the preference really weights the losses
    one = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "one", **kwargs(schedule, steps=1))
    fixed = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "fixed",
                                     **kwargs(None, steps=1, weighting=FixedWeights(schedule.draw(0, 2))))
    one.train()
    fixed.train()
    for (name, a), b in zip(one.model.named_parameters(), fixed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-6, msg=name)


def test_per_sample_w_weights_each_pair(tmp_path, tiny_lm_dir):
    captured = {}

    def loss_fn(logps, k, w):
        per_pair = dpo_pair_loss(0.5)(logps, k, w)
        captured[k] = (per_pair.detach().clone(), w.clone())
        return per_pair

    schedule = PreferenceSchedule(per_sample=True, seed=2)
    trainer = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "p",
                                       **{**kwargs(schedule, batch=3), "loss_fn": loss_fn})
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    total = trainer.training_step(trainer.model, batch)
    w = captured[0][1]
    assert w.shape == (3, 2) and torch.equal(w, torch.from_numpy(schedule.draw(0, 2, rows=3)))
    expected = sum((captured[k][0].double() * w[:, k]).mean() for k in range(2))  # mean_i sum_k w_ik l_ik
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert trainer.history[-1]["w/brief"] == pytest.approx(float(w[:, 1].mean()))


class Killed(RuntimeError):
    pass


class KillAt(TrainerCallback):
    """Raise right after checkpoint ``step`` is written (and stamped), as a SIGKILL would stop the run."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(f"killed after step {self.step}")


class RecordSteps(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def _history(folder):
    return [json.loads(line) for line in (folder / HISTORY_FILE).read_text().splitlines()]


@pytest.mark.parametrize("per_sample", [False, True])
def test_kill_and_resume_continue_the_same_preferences_and_weights(tmp_path, tiny_lm_dir, per_sample):
    schedule = PreferenceSchedule(alpha=0.7, per_sample=per_sample, seed=11)
    run = kwargs(schedule, steps=6, batch=2, save_steps=2)
    full = train_preference(tiny_lm_dir, PAIRS, save_dir=tmp_path / "full", checkpoint_dir=tmp_path / "ck-full", **run)

    with pytest.raises(Killed):
        train_preference(tiny_lm_dir, PAIRS, save_dir=tmp_path / "cut", checkpoint_dir=tmp_path / "ck-cut",
                         callbacks=[KillAt(4)], **run)
    (tmp_path / "ck-cut" / "checkpoint-4" / COMPLETE_FILE).unlink()  # as if killed while writing checkpoint 4
    record = RecordSteps()
    cut = train_preference(tiny_lm_dir, PAIRS, save_dir=tmp_path / "cut", checkpoint_dir=tmp_path / "ck-cut",
                           callbacks=[record], **run)
    assert record.steps == [3, 4, 5, 6]  # resumed from the last complete checkpoint, not the torn one

    a, b = _history(full), _history(cut)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    expected = [schedule.draw(i, 2, rows=2).mean(axis=0)[0] if per_sample else schedule.draw(i, 2)[0] for i in range(6)]
    assert [r["w/helpful"] for r in a] == [r["w/helpful"] for r in b] == pytest.approx(expected, abs=1e-12)
    assert len(set(expected)) == 6
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=0, rtol=0)


def test_resume_under_another_schedule_is_refused(tmp_path, tiny_lm_dir):
    first = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "ck",
                                     **kwargs(PreferenceSchedule(seed=1), steps=2, save_steps=2))
    first.train()
    other = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "ck",
                                     **kwargs(PreferenceSchedule(seed=2), steps=4, save_steps=2))
    with pytest.raises(ValueError, match="preference schedule"):
        other.train(resume_from_checkpoint=str(tmp_path / "ck" / "checkpoint-2"))


# ------------------------------------------------------------------ Tchebycheff aggregation


def test_tchebycheff_coefficients_hand_computed():
    t = TchebycheffWeights()
    t.set_preference(torch.tensor([0.3, 0.7], dtype=torch.float64))
    # 0.3 * 2.0 = 0.6 < 0.7 * 1.0 = 0.7: the second objective is the worst served
    assert t.coefficients(torch.tensor([2.0, 1.0])).tolist() == [0.0, 0.7]
    z = TchebycheffWeights(z=[0.0, 0.5])
    z.set_preference(torch.tensor([0.3, 0.7], dtype=torch.float64))
    # 0.3 * (2.0 - 0) = 0.6 > 0.7 * (1.0 - 0.5) = 0.35: now the first
    assert z.coefficients(torch.tensor([2.0, 1.0])).tolist() == [0.3, 0.0]
    assert z.weights.tolist() == [0.3, 0.7]  # the logs keep the preference
    assert z.fixed_coefficients() is None and z.state_dict() == {"z": [0.0, 0.5]}
    with pytest.raises(ValueError, match=r"z=\[0.0, 0.5\], this trainer has \[0.0\]"):
        TchebycheffWeights(z=[0.0]).load_state_dict({"z": [0.0, 0.5]})
    with pytest.raises(ValueError, match="one w per step"):
        t.set_preference(torch.full((3, 2), 0.5, dtype=torch.float64))
    bad = TchebycheffWeights(z=[0.0, 0.0, 0.0])
    bad.set_preference(torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="3 entries for 2 objectives"):
        bad.coefficients(torch.tensor([1.0, 1.0]))


def test_a_tchebycheff_step_is_an_sgd_step_on_the_worst_objective_scaled_by_its_w(tmp_path, tiny_lm_dir):
    schedule = PreferenceSchedule(alpha=1.0, seed=5)
    cheb = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "t", weighting=TchebycheffWeights(),
                                    **kwargs(schedule, steps=1))
    cheb.train()
    w = schedule.draw(0, 2)
    row = cheb.history[0]
    losses = np.array([row["loss/helpful"], row["loss/brief"]])
    # at the first step the policy is its reference: every DPO loss is ln 2, so the worst served is argmax w
    assert losses == pytest.approx([np.log(2), np.log(2)])
    worst = int(np.argmax(w * losses))
    assert worst == int(np.argmax(w))
    assert row[f"coef/{['helpful', 'brief'][1 - worst]}"] == 0.0  # the other objective takes no step
    # plain SGD on objective `worst` alone, learning rate scaled by w_worst: the same update
    one_hot = [1.0 if k == worst else 0.0 for k in range(2)]
    scaled = {**kwargs(None, steps=1), "settings": dataclasses.replace(settings(steps=1), learning_rate=0.05 * w[worst])}
    plain = build_preference_trainer(tiny_lm_dir, PAIRS, output_dir=tmp_path / "p", weighting=FixedWeights(one_hot),
                                     **scaled)
    plain.train()
    for (name, a), b in zip(cheb.model.named_parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-6, msg=name)
