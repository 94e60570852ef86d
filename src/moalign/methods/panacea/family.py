"""Panacea's policy family: one model; a preference is written into its SVD-LoRA singular values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from moalign.eval.family import Policy, described_path

FACTORY = "moalign.methods.panacea.family:family_from_description"


class PanaceaFamily:
    """``policy(w)`` yields the one trained model with lambda = w set in every layer: nothing is reloaded."""

    def __init__(self, path: str | Path, num_objectives: int, *, name: str = "panacea"):
        self.name = name
        self.path = str(path)
        self.num_objectives = int(num_objectives)
        self._loaded = None

    def preference(self, w) -> np.ndarray:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.num_objectives,):
            raise ValueError(f"Panacea family trained for {self.num_objectives} objectives got preference {w.tolist()}")
        return w

    @contextmanager
    def policy(self, w) -> Iterator[Policy]:
        lam = self.preference(w)
        if self._loaded is None:
            from moalign.models.load import load_policy  # imports torch

            self._loaded = load_policy(self.path)
        from moalign.models.svd_lora import set_preference

        model, tokenizer = self._loaded
        set_preference(model, lam)
        try:
            yield Policy(model=model, tokenizer=tokenizer)
        finally:
            set_preference(model, None)  # a forward outside policy(w) is refused, never silently stale

    def describe(self) -> dict:
        return {"type": "panacea", "factory": FACTORY, "name": self.name, "path": self.path,
                "num_objectives": self.num_objectives}


def family_from_description(description: dict, root: str | Path | None = None) -> PanaceaFamily:
    """Rebuild a saved Panacea family (the ``factory`` of family persistence); a relative path is read
    relative to ``root``, the folder holding the description."""
    path = described_path(description, root, ("num_objectives", "name"), "Panacea")
    return PanaceaFamily(str(path), description["num_objectives"], name=description["name"])
