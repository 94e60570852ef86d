"""methods.stages.training_stage: resume after a kill, only final weights kept, logs beside the stages."""

from __future__ import annotations

import json

import pytest
import torch

from moalign.config import TrainSettings
from moalign.methods.stages import CHECKPOINTS, KEPT_CHECKPOINTS, logs_dir, training_stage
from moalign.pipeline import Run
from moalign.train.sft import HISTORY_FILE, train_sft

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Can you help me?\n\nAssistant:"] * 4
RESPONSES = ["Mix flour, water, yeast and salt, then bake it.", "Sure. I am happy to help you today."] * 4
STAGE = "stage1/w=0.50,0.50"


def _settings(**kwargs) -> TrainSettings:
    return TrainSettings(max_steps=4, save_steps=2, learning_rate=3e-3, per_device_train_batch_size=4,
                         logging_steps=1, max_length=48, **kwargs)


def _sft_stage(root, model, settings: TrainSettings):
    """One SFT training stage in run folder ``root``; returns the stage folder."""
    run = Run(root, echo=lambda _msg: None)
    try:
        def train(checkpoints, out):
            train_sft(model, PROMPTS, RESPONSES, settings, out, seed=3, checkpoint_dir=checkpoints)

        return training_stage(run, STAGE, {"settings": settings}, train)
    finally:
        run.close()


def _weights(folder) -> dict:
    from moalign.models.load import load_policy

    return {k: v.detach().clone() for k, v in load_policy(folder)[0].state_dict().items()}


def test_a_killed_sft_stage_resumes_and_keeps_only_its_final_weights(tiny_lm_dir, tmp_path, sft_hooks):
    straight = _sft_stage(tmp_path / "straight", tiny_lm_dir, _settings())
    killed = sft_hooks.kill_after(2)
    with pytest.raises(sft_hooks.Killed):
        _sft_stage(tmp_path / "killed", tiny_lm_dir, _settings())
    assert [p.name for p in (tmp_path / "killed" / CHECKPOINTS).glob("*/checkpoint-*")] == ["checkpoint-2"]
    sft_hooks.clear()
    steps = sft_hooks.record_steps()
    resumed = _sft_stage(tmp_path / "killed", tiny_lm_dir, _settings())
    assert steps == {killed[0]: [3, 4]}  # resumed after the step-2 checkpoint, not from step 0
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for root, folder in ((tmp_path / "straight", straight), (tmp_path / "killed", resumed)):
        assert not (root / CHECKPOINTS).exists()  # the checkpoints are gone, and so is their folder
        assert not list(folder.rglob("checkpoint-*")) and not (folder / KEPT_CHECKPOINTS).exists()
        assert (folder / "model.safetensors").is_file() and not (root / "logs").exists()  # report_to=none
    history = [json.loads(line) for line in (resumed / HISTORY_FILE).read_text().splitlines()]
    assert [row["step"] for row in history if "loss" in row] == [1, 2, 3, 4]  # the resumed run's rows too


def test_keep_checkpoints_moves_them_into_the_stage_folder(tiny_lm_dir, tmp_path):
    folder = _sft_stage(tmp_path / "run", tiny_lm_dir, _settings(keep_checkpoints=True))
    assert sorted(p.name for p in (folder / KEPT_CHECKPOINTS).iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert (folder / KEPT_CHECKPOINTS / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (tmp_path / "run" / CHECKPOINTS).exists()


def test_tensorboard_events_land_under_the_run_logs_and_survive(tiny_lm_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    root = tmp_path / "run"
    folder = _sft_stage(root, tiny_lm_dir, _settings(report_to="tensorboard"))
    run = Run(root, echo=lambda _msg: None)
    logs = logs_dir(run, STAGE)
    run.close()
    assert logs == root / "logs" / "stage1" / "w=0.50,0.50"
    events = list(logs.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    assert not list(folder.rglob("events.out.tfevents.*")) and not (root / CHECKPOINTS).exists()
