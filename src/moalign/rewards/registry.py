"""Turning a reward spec string into a reward function.

A spec is one of
- a rule name from :data:`moalign.rewards.rules.RULES` (offline rewards, e.g. ``"positivity"``);
- a preset name from :data:`moalign.rewards.hf.PRESETS` (e.g. ``"hh-harmless"``), optionally with options:
  ``"beaver-cost?batch_size=2&dtype=bfloat16"``;
- ``"hf:<hub id or folder>"`` with options after ``?``:
  ``"hf:/models/rm?convention=text_pair&logit=1&sign=-1&batch_size=16&max_length=512"``.

Options are the fields of :class:`~moalign.rewards.hf.HFRewardSpec`; an unknown option or name fails with the
valid choices and a "did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl

from moalign.rewards.base import RewardFunction
from moalign.rewards.hf import PRESETS, HFRewardModel, HFRewardSpec

_INT_OPTIONS = {"logit", "batch_size", "max_length"}
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
OPTIONS = sorted(f.name for f in dataclasses.fields(HFRewardSpec) if f.name not in ("model", "source"))


class RewardSpecError(ValueError):
    """A reward spec string is wrong; the message names the part and the valid choices."""


def rule_names() -> dict[str, Callable[[], RewardFunction]]:
    """The offline rules (empty if the rules module is not installed in this checkout)."""
    try:
        from moalign.rewards.rules import RULES
    except ModuleNotFoundError as err:  # only the missing module itself, never an import error inside it
        if err.name != "moalign.rewards.rules":
            raise
        return {}
    return RULES


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"base?a=1&b=2"`` -> ("base", {"a": "1", "b": "2"}); a repeated or valueless option is an error."""
    base, _, query = spec.strip().partition("?")
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key in options:
            raise RewardSpecError(f"reward spec {spec!r}: option {key!r} given twice")
        options[key] = value
    return base, options


def _coerce(spec: str, key: str, value: str):
    if key not in OPTIONS:
        raise RewardSpecError(
            f"reward spec {spec!r}: unknown option {key!r}.{_did_you_mean(key, OPTIONS)} Options: {', '.join(OPTIONS)}"
        )
    try:
        if key in _INT_OPTIONS:
            return int(value)
        if key == "sign":
            return float(value)
        if key == "trust_remote_code":
            return _BOOL_WORDS[value.lower()]
    except (ValueError, KeyError):
        raise RewardSpecError(f"reward spec {spec!r}: option {key}={value!r} is not a valid value") from None
    if key in ("revision", "device", "name") and value.lower() in ("", "none"):
        return None
    return value


def parse_hf_spec(spec: str) -> HFRewardSpec:
    """The :class:`HFRewardSpec` of a preset or ``hf:`` spec (nothing is loaded)."""
    base, raw = split_spec(spec)
    options = {key: _coerce(spec, key, value) for key, value in raw.items()}
    try:
        if base in PRESETS:
            return dataclasses.replace(PRESETS[base], **{"name": base, **options})
        if base.startswith("hf:"):
            if not base[3:]:
                raise RewardSpecError(f"reward spec {spec!r}: give a Hub id or folder after 'hf:'")
            return HFRewardSpec(model=base[3:], **options)
    except RewardSpecError:
        raise
    except ValueError as err:
        raise RewardSpecError(f"reward spec {spec!r}: {err}") from None
    raise _unknown(base)


def _unknown(base: str) -> RewardSpecError:
    valid = sorted(rule_names()) + sorted(PRESETS)
    return RewardSpecError(
        f"unknown reward {base!r}.{_did_you_mean(base, valid)} Valid: rules {sorted(rule_names())}, "
        f"presets {sorted(PRESETS)}, or 'hf:<hub id or folder>[?option=value&...]'"
    )


def build_reward(spec: str, conversations: dict[str, list[dict]] | None = None) -> RewardFunction:
    """A reward function from a spec string (see the module docstring); HF models load once per checkpoint.
    ``conversations``: the task's rendered prompt -> messages, for ``hf:...?convention=chat``."""
    if not isinstance(spec, str) or not spec.strip():
        raise RewardSpecError(f"reward spec {spec!r}: give a rule name, a preset name or 'hf:<path>'")
    base, options = split_spec(spec)
    rules = rule_names()
    if base in rules:
        if options:
            raise RewardSpecError(f"reward spec {spec!r}: rule {base!r} takes no options")
        return rules[base]()
    return HFRewardModel(parse_hf_spec(spec), conversations=conversations)


def build_rewards(specs: Sequence[str], conversations: dict[str, list[dict]] | None = None) -> list[RewardFunction]:
    """One reward per spec, in order (the columns of the score matrix)."""
    if isinstance(specs, str):
        raise RewardSpecError(f"build_rewards takes a list of specs, got the single string {specs!r}")
    return [build_reward(spec, conversations) for spec in specs]


def uses_chat_template(spec: str) -> bool:
    """Whether a reward spec renders conversations with its own chat template (``convention=chat``)."""
    base, _ = split_spec(spec)
    return base not in rule_names() and parse_hf_spec(spec).convention == "chat"
