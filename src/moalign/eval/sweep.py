"""The preference sweep: for every w of the grid, the family's policy answers the fixed test prompts.

Each w is its own stage (``eval/generate/w=0.20,0.80``, named by its tag), so a run killed halfway through the grid resumes at
the next w. Every w uses the same generation seed (common random numbers): two preferences that yield the same
policy give identical responses, so a difference between points is the policy's, not the sampler's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moalign.config import GenerationSettings
from moalign.eval.family import PolicyFamily, portable_description
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
) -> str:
    """Generate one response per test prompt with the policy for ``w``; rows go to ``generations.jsonl``.

    The policy may rewrite the prompt (``format_prompt``, e.g. RiC's reward targets); the rows keep both the
    original prompt (what rewards and judges see) and the conditioned one (what the model saw).
    """
    name = generation_stage_name(tag)
    inputs = {"family": portable_description(family, run.root), "w": [float(x) for x in w], "generation": settings,
              "seed": seed}

    def compute(tmp: Path) -> None:
        prompts = load_prompts(run).prompts
        with family.policy(np.asarray(w, dtype=float)) as policy:
            conditioned = [policy.format_prompt(p) for p in prompts]
            texts = _generate(policy, conditioned, settings, seed, progress)
        rows = (
            {"index": i, "w": [float(x) for x in w], "prompt": p, "model_prompt": c, "response": t}
            for i, (p, c, t) in enumerate(zip(prompts, conditioned, texts))
        )
        write_rows(tmp / "generations.jsonl", rows)

    run.stage(name, inputs, compute, depends_on=[PROMPTS_STAGE])
    return name


def _generate(policy, prompts: list[str], settings: GenerationSettings, seed: int, progress: bool) -> list[str]:
    from moalign.eval.generate import generate

    return generate(
        policy.model, policy.tokenizer, prompts, settings, seed=seed, progress=progress,
        generate_fn=getattr(policy, "generate", None), **policy.generation_overrides
    )
