"""RiC's policy family: one conditional model; a preference becomes reward targets written into the prompt."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

from moalign.eval.family import Policy, SharedModelFamily, described_path
from moalign.methods.ric.conditioning import condition_prompt, map_preference

FACTORY = "moalign.methods.ric.family:family_from_description"


class RicFamily:
    """``policy(w)`` yields the one model with ``format_prompt`` writing ``map_preference(w)`` targets."""

    def __init__(
        self,
        path: str | Path,
        mapping: str,
        low: list[float],
        high: list[float],
        *,
        assistant_tag: str = "\n\nAssistant:",
        prompt_style: str = "official",
        name: str = "ric",
    ):
        self.name = name
        self.path = str(path)
        self.mapping = mapping
        self.low = [float(x) for x in low]
        self.high = [float(x) for x in high]
        self.assistant_tag = assistant_tag
        self.prompt_style = prompt_style
        self._folder = SharedModelFamily(name, self.path)  # the one folder, its HF model loaded on first use

    def targets(self, w) -> np.ndarray:
        """The reward targets written into the prompt for preference ``w``."""
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (len(self.low),):
            raise ValueError(f"RiC family trained for {len(self.low)} objectives got preference {w.tolist()}")
        return map_preference(w, self.mapping, np.asarray(self.low), np.asarray(self.high))

    def format_prompt(self, prompt: str, w) -> str:
        """``prompt`` conditioned on the targets of preference ``w`` (what the model is given)."""
        return condition_prompt(prompt, self.targets(w).tolist(), self.assistant_tag, self.prompt_style)

    @contextmanager
    def policy(self, w) -> Iterator[Policy]:
        self.targets(w)  # a preference of the wrong length is refused before anything loads
        with self._folder.policy(w) as policy:
            yield dataclasses.replace(policy, format_prompt=partial(self.format_prompt, w=w))

    def describe(self) -> dict:
        return {
            "type": "ric",
            "factory": FACTORY,
            "name": self.name,
            "path": self.path,
            "mapping": self.mapping,
            "low": self.low,
            "high": self.high,
            "assistant_tag": self.assistant_tag,
            "prompt_style": self.prompt_style,
        }


def family_from_description(description: dict, root: str | Path | None = None) -> RicFamily:
    """Rebuild a saved RiC family from its ``describe()`` dict (the ``factory`` of family persistence);
    a relative model path is read relative to ``root``, the folder that holds the saved description.

    A description saved before ``prompt_style`` existed carries ``rstrip_quirk``: ``false`` was the exact-suffix
    style (``clean``), ``true`` the ``rstrip`` style.
    """
    description = dict(description)
    if "prompt_style" not in description and "rstrip_quirk" in description:
        description["prompt_style"] = "rstrip" if description.pop("rstrip_quirk") else "clean"
    keys = ("path", "mapping", "low", "high", "assistant_tag", "prompt_style", "name")
    path = described_path(description, root, keys, "RiC")
    return RicFamily(**{**{k: description[k] for k in keys}, "path": str(path)})
