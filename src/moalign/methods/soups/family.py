"""The soup's policy family: K experts loaded once; ``policy(w)`` writes theta(w) into the one model."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from moalign.eval.family import Policy, described_path
from moalign.models.soups import Soup, check_experts, read_expert
from moalign.pareto.weights import validate_preference

FACTORY = "moalign.methods.soups.family:family_from_description"


class SoupFamily:
    """``policy(w)`` yields the soup of ``experts`` (one saved policy folder per objective, in the objectives'
    order) for w under ``mode``; the base and the expert tensors are loaded on the first call only, and the
    model is put back to its clean state after each policy. ``base``: the model the experts were trained from,
    recorded (LoRA experts must all name one base; full experts one architecture). ``device``: ``auto`` puts
    the soup on the GPU when there is one."""

    def __init__(self, experts: Sequence[str | Path], *, mode: str = "lora_factors", name: str | None = None,
                 base: str | None = None, dtype: str = "float32", device: str | None = "auto",
                 trained_by: str = "dpo"):
        self.experts = [str(e) for e in experts]
        self.mode = mode
        self.name = name or f"soup-{mode}"
        self.dtype = dtype
        self.device = device
        self.trained_by = trained_by
        read = [read_expert(e) for e in self.experts]
        check_experts(read, mode)  # before anything is loaded: a bad family fails at once
        self.kind = read[0].kind
        self.base = read[0].base if self.kind == "lora" else base
        self._soup: Soup | None = None

    def soup(self) -> Soup:
        if self._soup is None:
            device = self.device
            if device == "auto":
                import torch

                device = "cuda" if torch.cuda.is_available() else None
            self._soup = Soup(self.experts, self.mode, dtype=self.dtype, device=device)
        return self._soup

    @contextmanager
    def policy(self, w) -> Iterator[Policy]:
        w = validate_preference(w, len(self.experts), name=f"soup {self.name!r} preference")
        soup = self.soup()
        with soup.mixed(w) as model:
            yield Policy(model=model, tokenizer=soup.tokenizer)

    def describe(self) -> dict:
        """The mode, the experts (relative to their common folder ``path``, so a run folder can move) and the base."""
        folders = [str(Path(e).resolve()) for e in self.experts]
        root = os.path.commonpath(folders)
        return {"type": "soup", "factory": FACTORY, "name": self.name, "mode": self.mode, "kind": self.kind,
                "experts_trained_by": self.trained_by, "base": self.base, "dtype": self.dtype, "path": root,
                "experts": [os.path.relpath(f, root) for f in folders]}


def family_from_description(description: dict, root: str | Path | None = None) -> SoupFamily:
    """Rebuild a saved soup family (the ``factory`` of family persistence); a relative ``path`` is read
    relative to ``root``, the folder holding the description."""
    path = described_path(description, root, ("experts", "mode", "name"), "soup")
    return SoupFamily([path / e for e in description["experts"]], mode=description["mode"], name=description["name"],
                      base=description.get("base"), dtype=description.get("dtype", "float32"),
                      trained_by=description.get("experts_trained_by", "dpo"))
