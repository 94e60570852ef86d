"""``generation.backend: vllm``: the HF-equivalent sampling settings, which saved folders vLLM can decode, the
per-prompt seeds, the engine cache, the errors where vLLM cannot serve, and the evaluation harness decoding
through it. On a machine without vLLM and a GPU, a stand-in ``vllm`` module (recording what it is asked)
takes the engine's place; the comparison with HF ``generate`` runs where vLLM really can."""

from __future__ import annotations

import json
import sys
import types
from contextlib import contextmanager

import numpy as np
import pytest

from moalign.config import ConfigError, GenerationSettings, load_run_config, to_dict
from moalign.eval import vllm_generate as vg
from moalign.eval.family import Policy, SharedModelFamily
from moalign.eval.generate import encode_prompts, generate, generate_from_dir
from moalign.eval.harness import evaluate
from moalign.eval.metrics import DegenerateResultWarning
from moalign.eval.rows import read_rows
from moalign.models.load import load_policy, load_tokenizer
from moalign.pipeline import Run, inputs_hash

from .conftest import PROMPTS as EVAL_PROMPTS
from .conftest import make_config


def test_sampling_settings_map_to_vllms_names():
    sampled = GenerationSettings(max_new_tokens=12, temperature=0.7, top_p=0.9, top_k=0, stop_strings=["###"])
    assert vg.sampling_kwargs(sampled, eos_token_id=2) == {
        "n": 1, "max_tokens": 12, "stop": ["###"], "skip_special_tokens": True,
        "temperature": 0.7, "top_p": 0.9, "top_k": -1,  # top-k 0 ("off") is vLLM's -1
        "min_tokens": 1,  # forbid_eos_first
    }
    greedy = GenerationSettings(do_sample=False, top_k=50, forbid_eos_first=False)
    kwargs = vg.sampling_kwargs(greedy, eos_token_id=2)
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["top_k"]) == (0.0, 1.0, -1) and "min_tokens" not in kwargs
    assert "min_tokens" not in vg.sampling_kwargs(sampled, eos_token_id=None)  # no EOS to forbid


def test_a_prompts_seed_depends_on_the_run_seed_and_its_index_only():
    assert vg.prompt_seed(0, 5) == 5 and vg.prompt_seed(3, 2) == 3 * 1_000_003 + 2
    assert len({vg.prompt_seed(s, i) for s in range(4) for i in range(100)}) == 400
    assert 0 <= vg.prompt_seed(2**62, 7) < 2**63  # vLLM's seed is a 64-bit integer


def _adapter(folder, **config):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_which_saved_folders_vllm_can_decode(tmp_path, tiny_lm_dir):
    assert vg.vllm_model(tiny_lm_dir) == vg.VLLMModel(base=tiny_lm_dir)
    lora = _adapter(tmp_path / "lora", peft_type="LORA", base_model_name_or_path=tiny_lm_dir, r=4)
    assert vg.vllm_model(lora) == vg.VLLMModel(base=tiny_lm_dir, adapter=str(lora), rank=4)

    svd = _adapter(tmp_path / "svd", peft_type="LORA", base_model_name_or_path=tiny_lm_dir, r=4)
    (svd / "svd_lora_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"plain LoRA adapters only.*SVD-LoRA.*generation.backend=hf"):
        vg.vllm_model(svd)
    ia3 = _adapter(tmp_path / "ia3", peft_type="IA3", base_model_name_or_path=tiny_lm_dir)
    with pytest.raises(ValueError, match=r"'IA3'"):
        vg.vllm_model(ia3)
    whole = _adapter(tmp_path / "whole", peft_type="LORA", base_model_name_or_path=tiny_lm_dir, r=4,
                     modules_to_save=["lm_head"])
    with pytest.raises(ValueError, match=r"whole modules \['lm_head'\]"):
        vg.vllm_model(whole)


def test_an_adapters_rank_is_rounded_up_to_one_vllm_accepts():
    assert [vg.engine_rank(r) for r in (1, 4, 8, 9, 17, 512)] == [8, 8, 8, 16, 32, 512]
    with pytest.raises(ValueError, match="above vLLM's largest"):
        vg.engine_rank(1000)


def test_the_backend_setting_is_checked_and_hashed_only_where_it_changes_the_samples(tmp_path):
    with pytest.raises(ConfigError, match="backend"):
        GenerationSettings(backend="vlm")
    with pytest.raises(ConfigError, match="vllm_gpu_memory_utilization"):
        GenerationSettings(vllm_gpu_memory_utilization=1.5)
    default = GenerationSettings()
    assert "backend" not in to_dict(default, for_hash=True)  # runs from before the setting keep their stages
    assert inputs_hash(GenerationSettings(backend="vllm")) != inputs_hash(default)  # different samples
    engine = GenerationSettings(vllm_gpu_memory_utilization=0.9, vllm_max_model_len=512)
    assert inputs_hash(engine) == inputs_hash(default)  # how the engine runs is not what it samples
    path = tmp_path / "c.yaml"
    path.write_text("eval:\n  generation:\n    backend: vllm\n")
    assert load_run_config(path).eval.generation.backend == "vllm"
    assert load_run_config(None, ["eval.generation.backend=vllm"]).eval.generation.backend == "vllm"


def test_on_this_machine_vllm_is_refused_with_the_reason(tiny_lm_dir):
    if vg.vllm_unavailable_reason() is None:
        pytest.skip("vLLM can generate here: the refusal is not what happens")
    settings = GenerationSettings(backend="vllm", max_new_tokens=4)
    with pytest.raises(RuntimeError, match=r"generation.backend=vllm: .*(not installed|no(ne)? .*GPU).*backend=hf"):
        generate_from_dir(tiny_lm_dir, ["hi"], settings)


def test_an_in_memory_policy_cannot_be_decoded_by_vllm(tiny_lm_dir):
    model, tokenizer = load_policy(tiny_lm_dir)
    with pytest.raises(ValueError, match="exists only in memory"):
        generate(model, tokenizer, ["hi"], GenerationSettings(backend="vllm"))


# ---- a stand-in vllm module: the engine's arguments and requests are recorded, its text is a known function


class FakeLLM:
    built: list[dict] = []

    def __init__(self, **kwargs):
        FakeLLM.built.append(kwargs)
        self.requests: list[tuple] = []

    def generate(self, requests, params, lora_request=None, use_tqdm=True):
        self.requests.append((requests, params, lora_request))
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=_fake_text(r, p))])
                for r, p in zip(requests, params)]


def _fake_text(request, params) -> str:
    """What the stand-in engine 'samples': a function of the prompt's length and its seed, then a stop string."""
    return f" n{len(request['prompt_token_ids'])} s{params.kwargs['seed']}\n\nHuman: more"


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeLoRARequest:
    def __init__(self, lora_name, lora_int_id, lora_path):
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeSamplingParams
    lora, request = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    request.LoRARequest = FakeLoRARequest
    for name, module in {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(vg, "vllm_unavailable_reason", lambda: None)
    FakeLLM.built = []
    vg.ENGINES.close()
    yield FakeLLM
    vg.ENGINES.close()


PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Hi\n\nAssistant:",
           "\n\nHuman: Tell me about the sea.\n\nAssistant:"]


def test_vllm_decodes_a_folder_with_a_seed_per_prompt_and_cuts_at_the_stop_strings(fake_vllm, tiny_lm_dir):
    settings = GenerationSettings(backend="vllm", max_new_tokens=9, vllm_gpu_memory_utilization=0.3)
    texts = generate_from_dir(tiny_lm_dir, PROMPTS, settings, seed=3)
    lengths = [len(ids) for ids in encode_prompts(load_tokenizer(tiny_lm_dir), PROMPTS)]
    assert texts == [f"n{n} s{vg.prompt_seed(3, i)}" for i, n in enumerate(lengths)]  # cut at "\n\nHuman:", stripped
    (engine,) = fake_vllm.built
    assert engine == {"model": tiny_lm_dir, "tokenizer": tiny_lm_dir, "dtype": "float32", "seed": 0,
                      "trust_remote_code": False, "gpu_memory_utilization": 0.3, "tensor_parallel_size": 1}
    # the same prompts, one at a time at their own indices (as one rank of a launch deals them): the same texts
    assert vg.vllm_generate(tiny_lm_dir, load_tokenizer(tiny_lm_dir), PROMPTS, settings, seed=3, sharded=True) == texts
    assert len(fake_vllm.built) == 1  # the engine is kept for the same model


def test_lora_adapters_of_one_base_share_one_engine(fake_vllm, tiny_lm_dir, lora_experts):
    settings = GenerationSettings(backend="vllm", max_new_tokens=4)
    for path in lora_experts:
        generate_from_dir(path, PROMPTS[:1], settings)
    (engine,) = fake_vllm.built
    assert engine["model"] == tiny_lm_dir and (engine["enable_lora"], engine["max_lora_rank"]) == (True, 8)
    requests = [lora for _, _, lora in vg.ENGINES.llm.requests]
    assert [r.lora_path for r in requests] == lora_experts
    assert len({r.lora_int_id for r in requests}) == 2 and all(r.lora_int_id > 0 for r in requests)
    generate_from_dir(tiny_lm_dir, PROMPTS[:1], settings)  # the base alone: another engine, built anew
    assert len(fake_vllm.built) == 2 and "enable_lora" not in fake_vllm.built[1]


def test_an_adapter_with_added_tokens_is_refused(fake_vllm, tiny_lm_dir, lora_experts, tmp_path):
    import shutil

    folder = tmp_path / "grown"
    shutil.copytree(lora_experts[0], folder)
    tokenizer = load_tokenizer(tiny_lm_dir)
    tokenizer.add_tokens(["<r1>", "<r2>"])
    tokenizer.save_pretrained(folder)
    with pytest.raises(ValueError, match="added tokens"):
        generate_from_dir(str(folder), PROMPTS[:1], GenerationSettings(backend="vllm"))
    assert fake_vllm.built == []


def test_the_harness_decodes_a_checkpoint_family_with_vllm(fake_vllm, tmp_path, tiny_lm_dir, prompts_file, rewards,
                                                           monkeypatch):
    import moalign.models.load as load

    def no_hf_model(*args, **kwargs):
        raise AssertionError("the HF model was loaded, though vLLM decodes the folder")

    monkeypatch.setattr(load, "load_policy_model", no_hf_model)
    config = make_config(tmp_path / "run", tiny_lm_dir, prompts_file, grid="list:1,0;0,1")
    config.eval.generation.backend = "vllm"
    config.eval.generation.stop_strings = ["\n\nHuman:"]
    run = Run(config.run_dir, echo=None)
    with pytest.warns(DegenerateResultWarning):  # the stand-in's texts are two "words"
        result = evaluate(config, SharedModelFamily("base", tiny_lm_dir), run, rewards)
    rows = read_rows(run.root / "eval/generate" / result["points"][0]["key"] / "generations.jsonl")
    lengths = [len(ids) for ids in encode_prompts(load_tokenizer(tiny_lm_dir), EVAL_PROMPTS)]
    assert [r["response"] for r in rows] == [f"n{n} s{vg.prompt_seed(config.eval.seed, i)}"
                                             for i, n in enumerate(lengths)]
    assert len(fake_vllm.built) == 1  # one folder for both preferences: one engine


class InMemoryFamily:
    """A family whose policy has no folder (as a soup's or Panacea's)."""

    name = "in-memory"

    def __init__(self, tiny_lm_dir):
        self.model, self.tokenizer = load_policy(tiny_lm_dir)

    @contextmanager
    def policy(self, w):
        yield Policy(self.model, self.tokenizer)

    def describe(self):
        return {"type": "test-in-memory", "name": self.name}


def test_the_harness_refuses_vllm_for_a_policy_without_a_folder(fake_vllm, tmp_path, tiny_lm_dir, prompts_file,
                                                                  rewards):
    config = make_config(tmp_path / "run", tiny_lm_dir, prompts_file, grid="list:1,0")
    config.eval.generation.backend = "vllm"
    with pytest.raises(ValueError, match="exists only in memory.*eval.generation.backend=hf"):
        evaluate(config, InMemoryFamily(tiny_lm_dir), Run(config.run_dir, echo=None), rewards)
    assert fake_vllm.built == []


@pytest.mark.skipif(vg.vllm_unavailable_reason() is not None, reason=str(vg.vllm_unavailable_reason()))
def test_greedy_vllm_matches_hf_generate_on_the_tiny_model(tiny_lm_dir):
    settings = GenerationSettings(do_sample=False, max_new_tokens=8, stop_strings=[])
    hf = generate_from_dir(tiny_lm_dir, PROMPTS, settings)
    vllm = generate_from_dir(tiny_lm_dir, PROMPTS, GenerationSettings(**{**settings.__dict__, "backend": "vllm"}))
    vg.ENGINES.close()
    agree = np.mean([a == b for a, b in zip(hf, vllm)])
    assert agree >= 2 / 3, (hf, vllm)  # greedy decoding: the same argmax barring float ties
