"""The embedded tiny model: build, cache, rebuild, determinism, loading through from_pretrained, generation.

Fast tests use the ``test`` preset (a ~40k-parameter model, a few seconds) in a temporary cache. The slow
test builds (or reuses) the real default model and measures the reward conflict on its own samples.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from moalign.models import tiny
from moalign.models.load import load_policy


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("moalign_cache")


@pytest.fixture(scope="module")
def built(cache):
    return tiny.ensure_tiny_model(cache, preset="test")


def test_build_writes_a_loadable_llama_with_special_tokens(built):
    record = json.loads((built / "moalign_build.json").read_text())
    assert record["key"] == tiny.recipe_key(tiny.PRESETS["test"]) and built.name == f"tiny-test-{record['key']}"
    model, tokenizer = load_policy(built)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == tiny.PRESETS["test"].num_layers
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    assert model.config.eos_token_id == tokenizer.eos_token_id


def test_tokenizer_round_trips_any_text(built):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built)
    for text in ["\n\nHuman: How do I bake bread?\n\nAssistant: Knead the dough.", "café ☕ — 日本語  tabs\tand  spaces"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    # prompt + " " + response tokenises as the two parts concatenated (what SFT/DPO label masking relies on)
    prompt, response = "\n\nHuman: Hi!\n\nAssistant:", " Great question! Rinse the rice."
    joint = tokenizer(prompt + response, add_special_tokens=False)["input_ids"]
    parts = tokenizer(prompt, add_special_tokens=False)["input_ids"] + tokenizer(response, add_special_tokens=False)["input_ids"]
    assert joint == parts


def test_model_generates_through_the_shared_sampler(built):
    from moalign.eval.generate import generate

    model, tokenizer = load_policy(built)
    prompts = ["\n\nHuman: How do I cook rice?\n\nAssistant:"] * 3
    out = generate(model, tokenizer, prompts, seed=0, max_new_tokens=8)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert out == generate(model, tokenizer, prompts, seed=0, max_new_tokens=8)


def test_cache_is_reused_without_rebuilding(cache, built, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(tiny, "build_tiny_model", fail)
    assert tiny.ensure_tiny_model(cache, preset="test") == built


def test_changed_recipe_builds_a_new_folder(cache, built, monkeypatch):
    changed = dataclasses.replace(tiny.PRESETS["test"], max_steps=tiny.PRESETS["test"].max_steps + 1)
    assert tiny.recipe_key(changed) != tiny.recipe_key(tiny.PRESETS["test"])
    monkeypatch.setitem(tiny.PRESETS, "test", changed)
    rebuilt = tiny.ensure_tiny_model(cache, preset="test")
    assert rebuilt != built and rebuilt.is_dir() and built.is_dir()
    assert json.loads((rebuilt / "moalign_build.json").read_text())["recipe"]["max_steps"] == changed.max_steps


def test_changed_corpus_changes_the_key(monkeypatch):
    recipe = tiny.PRESETS["test"]
    before = tiny.recipe_key(recipe)
    monkeypatch.setattr(tiny, "_dialogues", lambda num, seed: ("\n\nHuman: x\n\nAssistant: y",) * num)
    assert tiny.recipe_key(recipe) != before


def test_build_is_deterministic(built, tmp_path):
    again = tiny.build_tiny_model(tmp_path / "again", tiny.PRESETS["test"])
    first, second = load_file(built / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        assert (first[name] == second[name]).all(), name
    assert (built / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(out_dir, recipe):
        Path(out_dir, "model.safetensors").write_text("half")
        raise RuntimeError("killed")

    monkeypatch.setattr(tiny, "build_tiny_model", broken)
    with pytest.raises(RuntimeError, match="killed"):
        tiny.ensure_tiny_model(tmp_path, preset="test")
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]


def test_cache_location_and_bad_preset(monkeypatch, tmp_path):
    monkeypatch.setenv("MOALIGN_CACHE", str(tmp_path / "c"))
    assert tiny.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MOALIGN_CACHE")
    assert tiny.default_cache_dir() == Path.home() / ".cache" / "moalign"
    with pytest.raises(ValueError, match="unknown tiny-model preset 'huge'"):
        tiny.ensure_tiny_model(tmp_path, preset="huge")


@pytest.mark.slow
def test_default_model_samples_look_like_the_corpus_and_rewards_conflict():
    """The real check behind the embedded task: on 256 of the base model's own samples (temperature 1,
    top-p 0.9) positivity and brevity have a clearly negative Spearman correlation, and the samples answer
    their prompt's topic. Builds the default model into the user cache when it is not there (~2-3 min)."""
    from scipy.stats import spearmanr

    from moalign.config import GenerationSettings
    from moalign.data.embedded import load_embedded_task
    from moalign.data.embedded.prompts import TOPICS, all_prompts
    from moalign.eval.generate import generate
    from moalign.rewards.rules import Brevity, Positivity

    model, tokenizer = load_policy(tiny.ensure_tiny_model())
    test_prompts = load_embedded_task(0).test_prompts
    prompts = test_prompts * 2
    samples = [t for seed in (0, 1) for t in generate(model, tokenizer, test_prompts, GenerationSettings(), seed=seed)]
    rho = spearmanr(Positivity()(prompts, samples), Brevity()(prompts, samples))[0]
    print(f"Spearman(positivity, brevity) on {len(samples)} base-model samples: {rho:.3f}")
    assert rho <= -0.3
    topic_of = {p.text: p.topic for p in all_prompts()}
    on_topic = [any(s in text.lower() for s in TOPICS[topic_of[p]].steps) for p, text in zip(prompts, samples)]
    assert sum(on_topic) / len(samples) > 0.6


def test_stale_partial_build_is_cleared(tmp_path, monkeypatch):
    name = f"tiny-test-{tiny.recipe_key(tiny.PRESETS['test'])}"
    stale = tmp_path / f".{name}.abc.partial"
    stale.mkdir()
    (stale / "model.safetensors").write_text("half")
    built = tiny.ensure_tiny_model(tmp_path, preset="test")
    assert not stale.exists() and built.name == name and oct(built.stat().st_mode & 0o777) == "0o755"


def test_under_a_launch_the_build_runs_in_a_child_without_the_launchers_variables(built, tmp_path, monkeypatch):
    """Inside torchrun / ``accelerate launch`` (here: their variables) the pre-training Trainer would join the
    launch's process group while the other ranks wait on the lock; the child sees none of them and builds the
    same model as one process does."""
    launch = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9",
              "ACCELERATE_USE_DEEPSPEED": "true", "TORCHELASTIC_RUN_ID": "x"}
    for key, value in launch.items():
        monkeypatch.setenv(key, value)
    seen, run = [], tiny.subprocess.run

    def spy(command, *, env, **kwargs):
        seen.append(env)
        return run(command, env=env, timeout=300, **kwargs)

    monkeypatch.setattr(tiny.subprocess, "run", spy)
    child = tiny.ensure_tiny_model(tmp_path, preset="test")
    assert len(seen) == 1 and not set(launch) & set(seen[0]) and seen[0]["PATH"] == tiny.os.environ["PATH"]
    a, b = load_file(built / "model.safetensors"), load_file(child / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
