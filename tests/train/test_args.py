"""TrainingArguments fields a config names (``method.train.optim`` ...) reach every trainer moalign builds."""

from __future__ import annotations

import pytest

from bread_pairs import PAIRS
from moalign.config import TrainSettings, load_run_config
from moalign.train.args import logging_to, training_kwargs
from moalign.train.losses import dpo_pair_loss
from moalign.train.preference_run import build_preference_trainer
from moalign.train.sft import build_sft_trainer
from moalign.train.weighting import FixedWeights

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Can you help me?\n\nAssistant:"] * 2
RESPONSES = ["Mix flour, water, yeast and salt, then bake it.", "Sure. I am happy to help you today."] * 2
OVERRIDES = ["train.optim=adafactor", "train.save_total_limit=2", "train.adam_beta2=0.95", "train.warmup_steps=3",
             "train.max_steps=2", "train.max_length=48"]


def _settings() -> TrainSettings:
    from dataclasses import dataclass, field

    @dataclass
    class Method:
        train: TrainSettings = field(default_factory=TrainSettings)

    return load_run_config(None, [f"method.{o}" for o in OVERRIDES], method_cls=Method).method.train


def _check(args) -> None:
    assert args.optim.value == "adafactor"
    assert args.save_total_limit == 2 and args.adam_beta2 == pytest.approx(0.95) and args.warmup_steps == 3
    assert args.max_steps == 2 and args.seed == 7  # moalign's own fields are still moalign's
    assert args.remove_unused_columns is False


def test_config_training_arguments_reach_the_sft_trainer(tiny_lm_dir, tmp_path):
    trainer = build_sft_trainer(tiny_lm_dir, PROMPTS, RESPONSES, _settings(), tmp_path / "sft", seed=7)
    _check(trainer.args)
    assert trainer.args.max_length == 48  # TRL's own SFTConfig field, from max_length


def test_config_training_arguments_reach_the_preference_trainer(tiny_lm_dir, tmp_path):
    trainer = build_preference_trainer(tiny_lm_dir, PAIRS, loss_fn=dpo_pair_loss(0.5), weighting=FixedWeights([0.5, 0.5]),
                                       settings=_settings(), output_dir=tmp_path / "pref", seed=7)
    _check(trainer.args)


def test_without_extra_fields_the_kwargs_are_moalign_defaults():
    kwargs = training_kwargs(TrainSettings(), "out", 0)
    assert "optim" not in kwargs and kwargs["warmup_steps"] == 0.0 and kwargs["save_strategy"] == "no"


def test_logging_to_points_the_integrations_at_a_folder_and_restores_the_environment(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    monkeypatch.setenv("WANDB_DIR", "/mine")
    with logging_to(tmp_path / "logs"):
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "logs")
        assert os.environ["WANDB_DIR"] == "/mine"  # the user's own setting wins
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ and os.environ["WANDB_DIR"] == "/mine"
