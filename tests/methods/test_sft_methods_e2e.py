"""ParetoHqD and RiC end to end on a small slice of the embedded task with the tiny random model: every stage
runs, the family is saved and rebuilt, the evaluation harness sweeps it, and a rerun skips every stage.

The full-size embedded runs (the pre-trained embedded model, the shipped configs) are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moalign.config import (
    GenerationSettings,
    LoraSettings,
    RunConfig,
    TaskConfig,
    TrainSettings,
    load_run_config,
)
from moalign.pipeline import Run

GRID = "list:0,1;0.5,0.5;1,0"


def _tiny_train(steps: int = 2, lora: int = 0) -> TrainSettings:
    return TrainSettings(max_steps=steps, learning_rate=1e-3, per_device_train_batch_size=4, max_length=96,
                         logging_steps=100, lora=LoraSettings(r=lora, alpha=2.0 * lora))


def _gen() -> GenerationSettings:
    return GenerationSettings(max_new_tokens=8, batch_size=8, temperature=1.0)


def _run_config(tmp_path: Path, model: str, method) -> RunConfig:
    config = RunConfig(run_dir=str(tmp_path / "run"), seed=0, method=method)
    config.task = TaskConfig(name="embedded", max_train_samples=90, num_test_prompts=3)
    config.model.name_or_path = model
    config.eval.grid = GRID
    config.eval.generation = _gen()
    config.eval.stats_samples = 90
    config.eval.progress = False
    # the tiny random model answers in a word or two, so every point counts as degenerate; these tests check
    # the pipeline, so the indicators are computed over every point anyway (and the degenerate flags are kept)
    config.eval.include_degenerate = True
    return config


def _quiet_run(root) -> tuple[Run, list[str]]:
    messages: list[str] = []
    return Run(root, echo=messages.append), messages


def _params(path):
    from moalign.models.load import load_policy

    model, _ = load_policy(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_paretohqd_end_to_end(tiny_lm_dir, tmp_path):
    from moalign.eval.family import load_family, save_family
    from moalign.eval.harness import evaluate
    from moalign.methods.paretohqd import METHOD, ParetoHqDConfig

    method = ParetoHqDConfig(num_layers=2, k=6, train=_tiny_train(), stage2_prompts=5, stage2_train=_tiny_train(),
                             stage2_generation=_gen())
    config = _run_config(tmp_path, tiny_lm_dir, method)
    run, _ = _quiet_run(config.run_dir)
    family = METHOD.train(config, run)

    selection = json.loads((run.stage_dir("select") / "selection.json").read_text())
    assert selection["tags"] == ["w=0.00,1.00", "w=0.50,0.50", "w=1.00,0.00"]
    assert all(0 < len(ix) <= 6 for ix in selection["indices"])
    generated = (run.stage_dir("generate2") / "generated.jsonl").read_text().splitlines()
    assert 0 < len(generated) <= 3 * 5  # three representatives (two extremes + balanced) x five prompts
    assert sorted(family.checkpoints) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    stage1, stage2 = _params(run.stage_dir("stage1/w=0.50,0.50")), _params(family.checkpoints[(0.5, 0.5)])
    assert any(not torch.equal(stage1[k], stage2[k]) for k in stage1)  # stage 2 trained further

    save_family(family, run.root / "family.json")
    assert load_family(run.root).describe()["checkpoints"] == family.describe()["checkpoints"]
    metrics = evaluate(config, family, run)
    assert np.isfinite(metrics["metrics"]["hypervolume"]["value"])

    again, messages = _quiet_run(config.run_dir)
    METHOD.train(config, again)
    assert messages and all("skipped" in m for m in messages)


def test_ric_end_to_end(tiny_lm_dir, tmp_path):
    from moalign.eval.family import load_family, save_family
    from moalign.eval.harness import evaluate
    from moalign.methods.ric import METHOD, OnlineSettings, RicConfig
    from moalign.methods.ric.conditioning import condition_prompt

    online = OnlineSettings(iterations=1, num_prompts=8, offline_mix=6, generation=_gen(),
                            train=_tiny_train(lora=4))
    method = RicConfig(train=_tiny_train(lora=4), online=online, mapping="linear", target_range="data")
    config = _run_config(tmp_path, tiny_lm_dir, method)
    run, _ = _quiet_run(config.run_dir)
    family = METHOD.train(config, run)

    summary = json.loads((run.stage_dir("online/iter1-data") / "summary.json").read_text())
    assert summary["generated"] == 8 and summary["kept"] <= summary["clean"]
    stats = json.loads((run.stage_dir("offline") / "ric_stats.json").read_text())
    assert stats["objectives"] == ["positivity", "brevity"]
    assert Path(family.path).name == "iter1-train"

    save_family(family, run.root / "family.json")
    rebuilt = load_family(run.root)
    assert rebuilt.describe() == family.describe()
    with rebuilt.policy(np.array([1.0, 0.0])) as policy:
        assert "<rm2_score>" not in policy.tokenizer.get_vocab()  # RiC writes the score tokens as plain text
        text = policy.format_prompt("\n\nHuman: Hi?\n\nAssistant:")
    high, low = family.high[0], family.low[1]  # RiC's string: two spaces before the first score token
    assert text == f"\n\nHuman: Hi?  <rm1_score> {high:.1f} <rm2_score> {low:.1f} \n\nAssistant:"
    metrics = evaluate(config, family, run)
    assert np.isfinite(metrics["metrics"]["hypervolume"]["value"])
    rows = [json.loads(line) for line in (run.stage_dir("eval/generate/w=1.00,0.00") / "generations.jsonl")
            .read_text().splitlines()]
    assert rows and all(r["model_prompt"] == condition_prompt(r["prompt"], family.targets([1.0, 0.0])) for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["paretohqd", "ric"])
def test_embedded_configs_train_and_evaluate(method, tmp_path):
    """The shipped embedded configs, shortened, on the pre-trained embedded model."""
    from moalign.methods.registry import get_method
    from moalign.methods.train_run import train_method

    root = Path(__file__).resolve().parents[2]
    overrides = [f"run_dir={tmp_path / method}", "eval.generation.max_new_tokens=16"]
    if method == "paretohqd":
        overrides += ["method.train.max_steps=5", "method.stage2_train.max_steps=3", "method.stage2_prompts=20"]
    else:
        overrides += ["method.train.max_steps=20", "method.online.train.max_steps=5", "method.online.num_prompts=40"]
    config = load_run_config(root / "configs" / "embedded" / f"{method}.yaml", overrides, get_method(method).config_cls)
    summary = train_method(method, config, evaluate=True)
    assert np.isfinite(summary["metrics"]["metrics"]["hypervolume"]["value"])


def _resumable(settings: TrainSettings) -> TrainSettings:
    settings.max_steps, settings.save_steps = 4, 2
    return settings


@pytest.mark.parametrize("method_name", ["paretohqd", "ric"])
def test_a_killed_sft_stage_resumes_to_the_uninterrupted_weights(method_name, tiny_lm_dir, tmp_path, sft_hooks):
    """Kill the first SFT stage after its step-2 checkpoint; the rerun resumes there (the checkpoint lives outside
    the atomic stage folder) and every trained folder ends bit-identical to an uninterrupted run's."""
    from moalign.methods.paretohqd import METHOD as PARETOHQD
    from moalign.methods.paretohqd import ParetoHqDConfig
    from moalign.methods.ric import METHOD as RIC
    from moalign.methods.ric import OnlineSettings, RicConfig

    def build():
        if method_name == "paretohqd":
            return PARETOHQD, ParetoHqDConfig(num_layers=2, k=6, train=_resumable(_tiny_train()), stage2=False)
        return RIC, RicConfig(train=_resumable(_tiny_train()), online=OnlineSettings(iterations=0), target_range="data")

    spec, method = build()
    straight = _run_config(tmp_path / "straight", tiny_lm_dir, method)
    spec.train(straight, _quiet_run(straight.run_dir)[0])

    config = _run_config(tmp_path / "killed", tiny_lm_dir, build()[1])
    killed = sft_hooks.kill_after(2)
    with pytest.raises(sft_hooks.Killed):
        spec.train(config, _quiet_run(config.run_dir)[0])
    checkpoints = list((Path(config.run_dir) / "_checkpoints").glob("*/checkpoint-2"))
    assert len(checkpoints) == 1
    sft_hooks.clear()
    steps = sft_hooks.record_steps()
    family = spec.train(config, _quiet_run(config.run_dir)[0])
    assert steps[killed[0]] == [3, 4]  # the killed stage resumed after its checkpoint, not from step 0
    assert not (Path(config.run_dir) / "_checkpoints").exists() or not any((Path(config.run_dir) / "_checkpoints").iterdir())
    folders = [family.path] if method_name == "ric" else list(family.checkpoints.values())
    for folder in folders:
        twin = Path(straight.run_dir) / Path(folder).relative_to(Path(config.run_dir).resolve())
        mine, theirs = _params(folder), _params(twin)
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), folder
