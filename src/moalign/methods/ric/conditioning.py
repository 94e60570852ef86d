"""Rewards-in-Context's pure pieces: the conditioned prompt, preference -> target mappings, MORS targets and
the any-objective quantile filter (spec sections 1 and 11). No model, no I/O: each is checked by hand-computed
numbers and by literals produced by the official code in ``tests/methods/test_ric_conditioning.py``.

The conditioned prompt (``prompt_style="official"``, the default) is RiC's string byte for byte. RiC's data
builder writes an HH prompt as ``conversation + " " + "\\n\\nAssistant:"`` and then conditions it with
``prompt.rstrip(tag) + " " + "<rm1_score> s1 <rm2_score> s2 " + tag``; ``str.rstrip`` strips a *set of
characters*, which the space stops. For a moalign HH prompt (``conversation + tag``) that gives::

    conversation + "  " + "<rm1_score> s1 <rm2_score> s2 " + "\\n\\nAssistant:"      (two spaces)

with ``s_i = str(round(z_i, 1))`` (Python's correctly rounded ``round``; ``-0.0`` stays ``-0.0``). A prompt
that already ends in the tag plus whitespace (the summary template, ``... ### Response: ``) is RiC's own
prompt: ``str.rstrip`` is applied to it as is, and can eat trailing letters of the post, as in RiC.
``"clean"``: remove exactly the tag, one space, ``-0.0`` written ``0.0``. ``"rstrip"``: RiC's ``str.rstrip``
on the prompt as given (for data whose prompts were already written by RiC's builder).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAPPINGS = ("linf", "l2", "linear")
PROMPT_STYLES = ("official", "clean", "rstrip")


def score_token(i: int) -> str:
    """The reward token of objective ``i`` (0-based): ``<rm1_score>`` for the first objective."""
    return f"<rm{i + 1}_score>"


def score_tokens(k: int) -> list[str]:
    return [score_token(i) for i in range(k)]


def format_score(value: float, *, signed_zero: bool = True) -> str:
    """A score as RiC writes it into the prompt: ``str(round(value, 1))``.

    Python's ``round`` rounds the exact binary value (``0.35`` -> ``0.3``, ``-0.05`` -> ``-0.1``), as RiC's
    offline labelling does on the unrounded z-scores; values RiC rounds with ``np.round`` first (online labels,
    targets) are passed already rounded and come out unchanged. ``signed_zero=False`` writes ``-0.0`` as ``0.0``.
    """
    rounded = round(float(value), 1)
    return str(rounded if signed_zero else rounded + 0.0)


def _require_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise ValueError(f"RiC: method.prompt_style={style!r}; choose one of {', '.join(PROMPT_STYLES)}")


def _tag_error(prompt: str, tag: str) -> ValueError:
    return ValueError(
        f"RiC: prompt does not end with the assistant tag {tag!r} (set method.assistant_tag to the template's "
        f"tag): ...{prompt[-60:]!r}"
    )


def _official_head(prompt: str, tag: str) -> str:
    """What RiC's ``prompt.rstrip(tag)`` leaves of the prompt its data builder would have written."""
    if prompt.endswith(tag):  # HH: RiC's builder puts a space before the final tag; the strip stops there
        return (prompt[: -len(tag)] + " " + tag).rstrip(tag)
    if prompt.rstrip().endswith(tag):  # already RiC's prompt (summary: "... ### Response: ")
        return prompt.rstrip(tag)
    raise _tag_error(prompt, tag)


def strip_assistant_tag(prompt: str, tag: str = "\n\nAssistant:", style: str = "official") -> str:
    """The text before the reward tokens (the conditioned prompt is this + ``" "`` + tokens + ``tag``).

    ``official``: RiC's head (for an HH prompt the conversation plus one space). ``clean``: the prompt without
    exactly ``tag`` (a prompt that does not end with it is an error). ``rstrip``: ``prompt.rstrip(tag)``.
    """
    _require_style(style)
    if style == "rstrip":
        return prompt.rstrip(tag)
    if style == "official":
        return _official_head(prompt, tag)
    if not prompt.endswith(tag):
        raise _tag_error(prompt, tag)
    return prompt[: -len(tag)]


def condition_prompt(
    prompt: str, scores: Sequence[float], tag: str = "\n\nAssistant:", style: str = "official", *,
    online: bool = False,
) -> str:
    """The prompt with reward targets/labels written before the assistant tag (RiC's training string).

    ``online=True`` (official style only): RiC re-reads an online sample's prompt from its decoded generation
    (``Instructions_n.get_prompt``), which drops whitespace at the end of the conversation.
    """
    head = strip_assistant_tag(prompt, tag, style)
    if online and style == "official":
        head = (head.rstrip() + " " + tag).rstrip(tag)
    signed = style != "clean"
    body = "".join(f"{score_token(i)} {format_score(s, signed_zero=signed)} " for i, s in enumerate(scores))
    return f"{head} {body}{tag}"


def gaussian_range(draws: int, seed: int) -> tuple[float, float]:
    """(low, high): min and max of ``draws`` standard-normal samples, rounded to 0.1 (about -4.3, 4.3 for
    100,000 draws): the MORS goal range (RiC's ``sample_goals``)."""
    samples = np.random.default_rng(seed).standard_normal(draws)
    return float(np.round(samples.min(), 1)), float(np.round(samples.max(), 1))


def reference_ranges(k: int, draws: int = 50000, seed: int = 8888) -> tuple[list[float], list[float]]:
    """Per-objective (low, high) of RiC's evaluation: objective i gets its *own* sample of ``draws`` N(0,1)
    values and that sample's unrounded min and max.

    RiC seeds numpy's global (legacy Mersenne-Twister) generator with 8888 and draws
    ``[np.random.randn(50000) for _ in range(k)]``; ``np.random.RandomState(seed)`` gives the same numbers.
    """
    rng = np.random.RandomState(seed)
    samples = [rng.randn(draws) for _ in range(k)]
    return [float(s.min()) for s in samples], [float(s.max()) for s in samples]


def map_preference(w: Sequence[float], mapping: str, low, high) -> np.ndarray:
    """Target scores for preference ``w`` (on the simplex), rounded to 0.1 (``np.round``, as RiC), ``-0.0``
    turned into ``0.0`` (RiC's evaluation adds the targets to a column of zeros). ``low``/``high``: scalars or
    per-objective arrays.

    * ``linf``: the objective with the largest weight (the first on a tie) gets ``high``; every other i gets
      ``min(N w_i, 1) (high - low) + low`` with N the number of objectives.
    * ``l2``: ``w_i / ||w||_2 (high - low) + low``.
    * ``linear``: ``w_i (high - low) + low``.
    """
    w = np.asarray(w, dtype=np.float64)
    n = w.shape[0]
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), (n,))
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), (n,))
    if mapping == "linf":
        t = np.minimum(n * w, 1.0) * (high - low) + low
        top = int(np.argmax(w))
        t[top] = high[top]
    elif mapping == "l2":
        t = w / np.sqrt(np.sum(w**2)) * (high - low) + low
    elif mapping == "linear":
        t = w * (high - low) + low
    else:
        raise ValueError(f"RiC: method.mapping={mapping!r}; choose one of {', '.join(MAPPINGS)}")
    return np.round(t, 1) + 0.0


def mors_targets(n: int, k: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """(n, k) MORS goals: each coordinate uniform in [low, high] and rounded to 0.1, then every coordinate
    except the smallest set to ``high``: one objective gets a random target, the others are maxed."""
    goals = np.round(rng.random((n, k)) * (high - low) + low, 1)
    keep = np.argmin(goals, axis=1)
    out = np.full((n, k), float(high))
    out[np.arange(n), keep] = goals[np.arange(n), keep]
    return out


def any_quantile_mask(scores: np.ndarray, q: float = 0.7, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Rows at or above the ``q``-quantile (``np.quantile``, linear) on ANY objective (OR, not AND)."""
    scores = np.asarray(scores, dtype=np.float64)
    if thresholds is None:
        thresholds = np.quantile(scores, q, axis=0)
    return np.any(scores >= thresholds, axis=1)


def is_bad_sample(text: str) -> bool:
    """RiC's filter for degenerate generations: '.....' anywhere, or ':)' three or more times."""
    return "....." in text or text.count(":)") >= 3
