"""The multi-objective SFT trainer: the NLL against transformers' own causal-LM loss, a weighted step and its
gradient against hand-computed ones (linear and per-objective-gradient paths), per-response preferences, and
a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from bread_pairs import RESPONSES
from moalign.config import TrainSettings
from moalign.train.losses import nll_loss
from moalign.train.multi_sft import MultiObjectiveSFTTrainer
from moalign.train.preference_run import build_response_trainer
from moalign.train.schedule import PreferenceSchedule
from moalign.train.weighting import FixedWeights
from stop_at import StopAt

OVERRIDES = {"optim": "sgd", "disable_tqdm": True, "lr_scheduler_type": "constant"}


def make(tmp_path, tiny_lm_dir, weighting=None, *, loss=None, batch=3, steps=2, save_steps=0, sub="run", **kwargs):
    settings = TrainSettings(learning_rate=0.05, max_steps=steps, per_device_train_batch_size=batch, logging_steps=1,
                             save_steps=save_steps, max_length=48, max_grad_norm=0.0)
    return build_response_trainer(tiny_lm_dir, RESPONSES, loss_fn=loss or nll_loss(), weighting=weighting,
                                  settings=settings, output_dir=tmp_path / sub, seed=0, training_overrides=OVERRIDES,
                                  **kwargs)


def first_batch(trainer, n=3):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(n)])


def causal_lm_loss(model, sub: dict, rows=None) -> torch.Tensor:
    """transformers' own loss: the mean NLL over the labelled (response) tokens of the given rows."""
    rows = slice(None) if rows is None else rows
    return model(input_ids=sub["input_ids"][rows], attention_mask=sub["attention_mask"][rows],
                 labels=sub["labels"][rows]).loss


def test_the_nll_is_the_causal_lm_loss_of_the_responses(tmp_path, tiny_lm_dir):
    trainer = make(tmp_path, tiny_lm_dir, FixedWeights([0.5, 0.5]))
    batch = first_batch(trainer)
    for k, sub in enumerate(batch["objectives"]):
        assert sub["input_ids"].shape[0] == 3  # one row per response, no rejected half
        assert (sub["labels"][:, :4] == -100).all()  # the prompt is not scored
        with torch.no_grad():
            loss, metrics = trainer.objective_loss(trainer.model, sub, k)
            expected = causal_lm_loss(trainer.model, sub)
            per_row = torch.stack([causal_lm_loss(trainer.model, sub, slice(i, i + 1)) for i in range(3)])
            trainer.loss_fn = nll_loss("sequence")
            by_sequence, _ = trainer.objective_loss(trainer.model, sub, k)
            trainer.loss_fn = nll_loss()
        assert float(loss) == pytest.approx(float(expected), rel=1e-5)
        assert metrics["nll_per_token"] == pytest.approx(float(expected), rel=1e-5)
        assert float(by_sequence) == pytest.approx(float(per_row.mean()), rel=1e-5)
        assert abs(float(by_sequence) - float(expected)) > 1e-4  # the responses differ in length


@pytest.mark.parametrize("gradient_path", [False, True])
def test_a_weighted_step_and_its_gradient_are_the_hand_computed_ones(tmp_path, tiny_lm_dir, gradient_path):
    trainer = make(tmp_path, tiny_lm_dir, FixedWeights([0.3, 0.7]), per_objective_gradients=gradient_path)
    batch = first_batch(trainer)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    subs = batch["objectives"]
    losses = [causal_lm_loss(trainer.model, sub) for sub in subs]
    hand = 0.3 * losses[0] + 0.7 * losses[1]
    hand_grads = torch.autograd.grad(hand, params)
    total = trainer.training_step(trainer.model, batch)
    # the step's reported loss: the weighted sum, or on the gradient path (weights chosen after the step's
    # gradients) the objectives' mean
    reported = (losses[0] + losses[1]) / 2 if gradient_path else hand
    assert float(total) == pytest.approx(float(reported), rel=1e-5)
    for p, g in zip(params, hand_grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-4)


def test_a_per_response_preference_reaches_the_hook_once_per_row(tmp_path, tiny_lm_dir):
    seen = []
    trainer = make(tmp_path, tiny_lm_dir, schedule=PreferenceSchedule(kind="dirichlet", per_sample=True),
                   model_hook=lambda model, w: seen.append(w.clone()))
    trainer.training_step(trainer.model, first_batch(trainer))
    assert seen[0].shape == (3, 2)  # the 3 responses of the step, not doubled as a pair batch's 2 x 3 rows
    torch.testing.assert_close(seen[0], trainer._w)
    assert len({tuple(row) for row in seen[0].tolist()}) == 3


def test_no_reference_is_taken(tmp_path, tiny_lm_dir):
    with pytest.raises(TypeError, match="reference"):
        make(tmp_path, tiny_lm_dir, reference="model")
    with pytest.raises(TypeError, match="takes no 'ref_model'"):
        MultiObjectiveSFTTrainer(loss_fn=nll_loss(), ref_model=torch.nn.Linear(1, 1))


def test_resumed_run_equals_uninterrupted_run(tmp_path, tiny_lm_dir):
    def run(sub, resume=None, stop=None):
        trainer = make(tmp_path, tiny_lm_dir, schedule=PreferenceSchedule(kind="dirichlet"), steps=4, save_steps=2,
                       batch=2, sub=sub)
        if stop:
            trainer.add_callback(StopAt(stop))
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    full = run("full")
    run("cut", stop=2)
    resumed = run("cut", resume=str(tmp_path / "cut" / "checkpoint-2"))
    a = {n: p for n, p in full.model.named_parameters()}
    for n, p in resumed.model.named_parameters():
        torch.testing.assert_close(p, a[n], atol=0, rtol=0)
    assert [r["w/helpful"] for r in resumed.history] == [r["w/helpful"] for r in full.history]
    assert len(full.history) == 4 and "nll_per_token/brief" in full.history[0]
