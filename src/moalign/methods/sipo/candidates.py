"""SIPO's candidates: MOD samples on the conflicting prompts, the optional review and rewrite, and the score
tables the filter reads (official ``mod.py --split train_conflict``, ``review.py``, ``rewrite.py``,
``select_rewrite.py``, ``select_sample.py``).

Everything here is a pure step over saved expert folders; the stages (:mod:`moalign.methods.sipo.pipeline`)
decide what is computed once and cached.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moalign.config import GenerationSettings, ModelConfig
from moalign.methods.mod import MODFamily


def pair_weight(a: float) -> np.ndarray:
    """SIPO's two-objective weight: ``a`` on the first objective, ``1 - a`` on the second."""
    return np.array([float(a), 1.0 - float(a)])


def mod_responses(family: MODFamily, w, prompts: Sequence[str], settings: GenerationSettings, *,
                  seed: int) -> list[str] | None:
    """One MOD response per prompt from the experts of ``family`` combined at ``w`` (a one-hot w is that expert
    alone). Under a multi-process launch every rank calls this and decodes its share; the main rank gets every
    response, the others None."""
    from moalign.eval.generate import generate

    with family.policy(np.asarray(w, dtype=float)) as policy:
        return generate(policy.hf_model(), policy.tokenizer, list(prompts), settings, seed=seed, progress=True,
                        generate_fn=policy.generate, sharded=True)


def keep_rewrite(original: np.ndarray, rewrite: np.ndarray) -> bool:
    """The official ``select_rewrite.py`` rule: keep the rewrite unless the original MOD sample scores at least
    as high on every reward (a weakly dominated rewrite is dropped; a tie everywhere keeps the original).

    >>> keep_rewrite(np.array([1.0, 2.0]), np.array([1.5, 1.0])), keep_rewrite(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    (True, False)
    """
    return not bool(np.all(np.asarray(rewrite) <= np.asarray(original)))


def fill(template: str, goal: str, **fields: str) -> str:
    """``template`` with ``{goal}`` and the named fields filled (other braces in the text are left alone)."""
    text = template.replace("{goal}", goal)
    for name, value in fields.items():
        text = text.replace("{" + name + "}", value)
    return text


LOGPS_BATCH = 16  # texts_logps' batch: a rank's share of the texts is whole batches of it


def implicit_reward_table(experts: Sequence[str], soup_weights: Sequence[float], base: ModelConfig,
                          prompts: Sequence[str], responses: Sequence[str], *, beta: float,
                          max_length: int, sharded: bool = False) -> np.ndarray | None:
    """(n, K + S) implicit rewards beta * (log pi(y|x) - log pi_base(y|x)) of each (prompt, response): first
    under each expert, then under the soup of the two experts at each soup weight (official: LoRA factors
    interpolated key by key; full experts: their weights).

    A one-hot soup is exactly its expert, so every column comes from one in-memory soup; the base log-probs
    are computed once, before the soup is loaded, so two models are never held at the same time.
    ``sharded``: under a launch every rank must call this with the same texts; each scores its share (whole
    batches, so the same numbers) and the main rank gets the table, the others None."""
    from moalign import distributed

    if not sharded:
        return _implicit_rewards(experts, soup_weights, base, prompts, responses, beta, max_length)

    def rows(indices: list[int]) -> list:
        return list(_implicit_rewards(experts, soup_weights, base, [prompts[i] for i in indices],
                                      [responses[i] for i in indices], beta, max_length))

    gathered = distributed.map_blocks(len(prompts), LOGPS_BATCH, rows)
    if gathered is None:
        return None
    return np.asarray(gathered, dtype=np.float64).reshape(len(prompts), len(experts) + len(soup_weights))


def _implicit_rewards(experts, soup_weights, base: ModelConfig, prompts, responses, beta: float,
                      max_length: int) -> np.ndarray:
    import torch

    from moalign.models.adapters import load_model, load_model_tokenizer
    from moalign.models.soups import Soup, read_expert
    from moalign.train.reference import texts_logps

    if not len(prompts):
        return np.zeros((0, len(experts) + len(soup_weights)))
    device = "cuda" if torch.cuda.is_available() else None
    model = load_model(base)[0].to(device or "cpu")
    reference = texts_logps(model, load_model_tokenizer(base), prompts, responses, max_length, LOGPS_BATCH)
    del model
    mode = "lora_factors" if read_expert(experts[0]).kind == "lora" else "full_weights"
    soup = Soup(list(experts), mode, dtype=base.dtype, device=device)
    weights = [np.eye(len(experts))[k] for k in range(len(experts))] + [pair_weight(a) for a in soup_weights]
    columns = []
    for w in weights:
        with soup.mixed(w) as mixed:
            columns.append(beta * (texts_logps(mixed, soup.tokenizer, prompts, responses, max_length, LOGPS_BATCH)
                                   - reference))
    return np.stack(columns, axis=1)
