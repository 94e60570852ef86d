"""The preference sweep: for every w of the grid, the family's policy answers the fixed test prompts.

Each w is its own stage (``eval/generate/w=0.20,0.80``, named by its tag), so a run killed halfway through the grid resumes at
the next w. Every w uses the same generation seed (common random numbers): two preferences that yield the same
policy give identical responses, so a difference between points is the policy's, not the sampler's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moalign.config import GenerationSettings
from moalign.eval.family import PolicyFamily, portable_description, trained_versions
from moalign.eval.inputs import load_prompts
from moalign.eval.rows import write_rows
from moalign.eval.stages import PROMPTS_STAGE, generation_stage_name
from moalign.pipeline import Run


def generation_stage(
    run: Run,
    family: PolicyFamily,
    w: np.ndarray,
    tag: str,
    settings: GenerationSettings,
    seed: int,
    progress: bool = False,
    *,
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> str:
    """Generate one response per test prompt with the policy for ``w``; rows go to ``generations.jsonl``.

    The policy may rewrite the prompt (``format_prompt``, e.g. RiC's reward targets); the rows keep both the
    original prompt (what rewards and judges see) and the conditioned one (what the model saw). With a GPU the
    policy decodes there, in the run's ``dtype`` (:func:`on_accelerator`); with ``settings.backend == "vllm"``
    vLLM decodes the policy's saved folder (:mod:`moalign.eval.vllm_generate`).
    """
    name = generation_stage_name(tag)
    inputs = {"family": portable_description(family, run.root), "w": [float(x) for x in w], "generation": settings,
              "seed": seed}
    if dtype != "float32":  # hashed only when set, so the stages of float32 runs stay done
        inputs["dtype"] = dtype
    trained = trained_versions(inputs["family"], run.root)
    if trained:  # a model retrained in place is a new policy, though its folder is the same
        inputs["trained"] = trained

    def compute(tmp: Path) -> None:
        prompts = load_prompts(run).prompts
        with family.policy(np.asarray(w, dtype=float)) as policy:
            conditioned = [policy.format_prompt(p) for p in prompts]
            texts = _generate(policy, conditioned, settings, seed, progress, dtype, trust_remote_code)
        if texts is None:  # another rank of a launch: the main rank writes the rows
            return
        rows = (
            {"index": i, "w": [float(x) for x in w], "prompt": p, "model_prompt": c, "response": t}
            for i, (p, c, t) in enumerate(zip(prompts, conditioned, texts))
        )
        write_rows(tmp / "generations.jsonl", rows)

    run.stage(name, inputs, compute, depends_on=[PROMPTS_STAGE], ranks="all")
    return name


def on_accelerator(model, dtype: str = "float32"):
    """The policy's model on the GPU, in ``dtype``, when there is a GPU and the model is still on the CPU
    (families load their models on the CPU; a family that places itself, like MOD's or a soup, is left as it
    is). Moved in place, so a family that keeps its model moves it once."""
    import torch

    from moalign.models.load import DTYPES

    if not torch.cuda.is_available() or next(model.parameters()).device.type != "cpu":
        return model
    return model.to(device="cuda", dtype=DTYPES[dtype])


def _generate(policy, prompts: list[str], settings: GenerationSettings, seed: int, progress: bool,
              dtype: str = "float32", trust_remote_code: bool = False) -> list[str] | None:
    """Every prompt's response; under a multi-process launch each rank decodes its share of the batches and
    the main rank gets them all, in order (the other ranks get None)."""
    from moalign.eval.generate import generate

    if settings.backend == "vllm":
        return _vllm_generate(policy, prompts, settings, seed, dtype, trust_remote_code)
    model = on_accelerator(policy.hf_model(dtype), dtype)
    return generate(model, policy.tokenizer, prompts, settings, seed=seed, progress=progress,
                    generate_fn=getattr(policy, "generate", None), sharded=True, **policy.generation_overrides)


def _vllm_generate(policy, prompts: list[str], settings: GenerationSettings, seed: int, dtype: str,
                   trust_remote_code: bool) -> list[str] | None:
    """The policy's saved folder decoded by vLLM (a family that defers its HF model never loads it here)."""
    import dataclasses

    from moalign.eval.vllm_generate import vllm_generate

    if policy.source is None or policy.generate is not None:
        raise ValueError("generation.backend=vllm decodes a policy saved as a folder; this family's policy exists "
                         "only in memory (a soup, Panacea at a preference, MOD's experts): set "
                         "eval.generation.backend=hf for it")
    settings = dataclasses.replace(settings, **policy.generation_overrides)
    return vllm_generate(policy.source, policy.tokenizer, prompts, settings, seed, dtype=dtype,
                         trust_remote_code=trust_remote_code, sharded=True)
