"""The policy-family interface: for a preference vector w, how to generate.

Every method's output is a policy family. The evaluation harness only talks to this interface, so it never
imports a method. A family yields a :class:`Policy` for each w inside a context manager, so that it can set
adapter state (Panacea's singular values), load a per-w checkpoint, or merge weights (soups), and undo it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from moalign.eval.grid import PreferenceGrid
from moalign.io_utils import atomic_write_json


def identity_prompt(prompt: str) -> str:
    return prompt


@dataclass
class Policy:
    """A model ready to generate for one preference: ``format_prompt`` rewrites each prompt first
    (RiC writes its reward targets into it); ``generation_overrides`` changes decoding settings;
    ``generate``, when set, is called instead of ``model.generate`` (a decoder that is not one HF model, such
    as MOD's K experts; see :func:`moalign.eval.generate.generate`). ``source`` is the folder (or Hub id) that
    holds exactly this policy's weights, when there is one: ``generation.backend: vllm`` decodes it there; a
    policy that exists only in memory (a soup, Panacea at w, MOD) has none. A family that loads the HF model
    only when it is used leaves ``model`` None and sets ``load_model(dtype)``: read it through
    :meth:`hf_model`, so that a vLLM decode of ``source`` never holds a second copy of the weights."""

    model: Any
    tokenizer: Any
    format_prompt: Callable[[str], str] = identity_prompt
    generation_overrides: dict = field(default_factory=dict)
    generate: Callable | None = None
    source: str | None = None
    load_model: Callable[[str], Any] | None = None

    def hf_model(self, dtype: str = "float32"):
        """The HF model that decodes this policy, loaded now (in ``dtype`` where the family loads in the decode's
        dtype) when the family deferred it."""
        if self.model is None and self.load_model is not None:
            self.model = self.load_model(dtype)
        return self.model


@runtime_checkable
class PolicyFamily(Protocol):
    """Maps a preference vector to a policy. ``describe()`` returns JSON-able facts recorded in the run
    (and hashed, so that a changed family reruns evaluation)."""

    name: str

    def policy(self, w: np.ndarray) -> Any:  # a context manager yielding Policy
        ...

    def describe(self) -> dict: ...


class CheckpointFamily:
    """One saved model (or adapter) folder per preference: ParetoHqD, DPO-LW, MODPO, MORLHF.

    ``checkpoints`` maps each preference vector (a tuple) to a folder loadable with ``from_pretrained``.
    A single shared checkpoint for every w (the base model alone) is the degenerate family used as a
    sanity check: every point of its front coincides up to sampling noise... and exactly, with one seed.
    """

    def __init__(self, name: str, checkpoints: dict[tuple[float, ...], str | Path], *, dtype: str | None = None,
                 trust_remote_code: bool = False):
        self.name = name
        self.checkpoints = {tuple(round(float(x), 6) for x in k): str(v) for k, v in checkpoints.items()}
        self.grid = PreferenceGrid.from_points(list(self.checkpoints)) if self.checkpoints else None
        self._by_tag = {self.grid.tag(k): v for k, v in self.checkpoints.items()} if self.grid else {}
        self.dtype, self.trust_remote_code = dtype, trust_remote_code
        self._path: str | None = None  # the folder whose tokenizer (and, once used, model) is held
        self._tokenizer: Any = None
        self._model: Any = None

    def checkpoint_for(self, w: Sequence[float]) -> str:
        """The folder trained for ``w``, found by its preference tag."""
        tag = self.grid.tag(w) if self.grid else None
        if tag in self._by_tag:
            return self._by_tag[tag]
        raise KeyError(f"family {self.name!r} has no checkpoint for preference {tag or list(w)}; it was trained "
                       f"for {list(self._by_tag)}")

    @contextmanager
    def policy(self, w: np.ndarray) -> Iterator[Policy]:
        """The folder's policy; its HF model is loaded on first use (:meth:`Policy.hf_model`) and kept while the
        next w names the same folder."""
        path = self.checkpoint_for(w)
        if self._path != path:
            from moalign.models.load import load_policy_tokenizer  # imports transformers

            self._path, self._model = path, None  # the previous folder's model is let go first
            self._tokenizer = load_policy_tokenizer(path, trust_remote_code=self.trust_remote_code)
        yield Policy(model=self._model, tokenizer=self._tokenizer, source=path, load_model=self._load_model)

    def _load_model(self, dtype: str):
        """The current folder's model as saved: in ``self.dtype`` when the family names one, else in the
        decode's ``dtype`` on a GPU and in float32 on the CPU (where bf16 decoding is slow and inexact)."""
        import torch

        from moalign.models.load import load_policy_model  # imports torch

        if self._model is None:
            load_dtype = self.dtype or (dtype if torch.cuda.is_available() else "float32")
            self._model = load_policy_model(self._path, len(self._tokenizer), dtype=load_dtype,
                                            trust_remote_code=self.trust_remote_code)
        return self._model

    def describe(self) -> dict:
        """Checkpoints keyed by preference tag, with each tag's exact preference vector."""
        points = {self.grid.tag(k): list(k) for k in self.checkpoints} if self.grid else {}
        return {"type": "checkpoints", "name": self.name, "checkpoints": dict(self._by_tag), "points": points}


class SharedModelFamily(CheckpointFamily):
    """The same checkpoint for every w (e.g. the base model): a family whose front is one point."""

    def __init__(self, name: str, path: str | Path, *, dtype: str | None = None, trust_remote_code: bool = False):
        super().__init__(name, {}, dtype=dtype, trust_remote_code=trust_remote_code)
        self.path = str(path)

    def checkpoint_for(self, w: Sequence[float]) -> str:
        return self.path

    def describe(self) -> dict:
        return {"type": "shared", "name": self.name, "path": self.path}


# ----------------------------------------------------------------------------------------------------------
# Persistence: a family is saved as its description; ``load_family`` rebuilds it
# ----------------------------------------------------------------------------------------------------------


def save_family(family: PolicyFamily, path: str | Path) -> Path:
    """Write ``family.describe()`` as JSON so that ``load_family`` (or ``moalign eval``) can rebuild it.

    A method whose family is not a built-in type puts ``"factory": "package.module:function"`` in its
    description; ``load_family`` imports that function and calls ``function(description, root)`` where
    ``root`` is the folder holding the file (so saved paths may be relative to it). Built-in checkpoint paths
    inside that folder are written relative to it, so a run directory can be moved.
    """
    path = Path(path)
    description = family.describe()
    if "factory" not in description and description.get("type") not in _BUILTIN_LOADERS:
        raise ValueError(
            f"family {getattr(family, 'name', family)!r}: describe() must carry a built-in 'type' "
            f"({sorted(_BUILTIN_LOADERS)}) or a 'factory': 'module:function' that rebuilds it"
        )
    atomic_write_json(path, portable_description(family, path.parent))
    return path


def described_path(description: dict, root: str | Path | None, required: Sequence[str], kind: str) -> Path:
    """The model path of a saved factory family's description (relative ones are read from ``root``, the
    folder holding it), after checking it has the ``required`` keys; what every ``family_from_description``
    starts with."""
    missing = [k for k in ("path", *required) if k not in description]
    if missing:
        raise ValueError(f"{kind} family description lacks {missing}; it must come from its describe()")
    path = Path(description["path"])
    return Path(root) / path if root is not None and not path.is_absolute() else path


def portable_description(family: PolicyFamily, root: str | Path) -> dict:
    """``family.describe()`` with its model paths inside ``root`` written relative to it: what is saved (so a
    run directory can be moved) and what evaluation stages hash (so the family trained in this process and
    the same family loaded back later from ``family.json`` are one family, whatever the working directory)."""
    description = dict(family.describe())
    root = Path(root).resolve()
    if description.get("type") == "checkpoints":
        description["checkpoints"] = {k: _relative(v, root) for k, v in description["checkpoints"].items()}
    elif description.get("type") == "shared" or ("factory" in description and isinstance(description.get("path"), str)):
        description["path"] = _relative(description["path"], root)  # a factory (Panacea, RiC) reads it relative to root
    return description


def trained_versions(description: dict, root: str | Path) -> dict[str, str]:
    """``{stage folder: its inputs hash}`` for every stage folder of the run at ``root`` that a family
    description names (its checkpoints, its ``path``, names under its ``path`` such as a soup's or MOD's
    experts). The evaluation stages hash it with the description, so a model retrained in place (the same
    folder, other inputs) is evaluated again instead of read back from the earlier model's stage."""
    from moalign.pipeline import STAGE_FILE

    root = Path(root).resolve()
    base = description.get("path") if isinstance(description.get("path"), str) else None
    found: dict[str, str] = {}
    for value in _strings(description):
        for candidate in (value, f"{base}/{value}") if base and value != base else (value,):
            record = root / candidate / STAGE_FILE
            if not record.is_file():
                continue
            try:
                key = record.parent.resolve().relative_to(root).as_posix()
            except ValueError:  # a folder outside the run: not one of its stages
                continue
            found[key] = json.loads(record.read_text(encoding="utf-8"))["inputs_hash"]
    return dict(sorted(found.items()))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def load_family(path: str | Path) -> PolicyFamily:
    """Rebuild a family from a file written by :func:`save_family` (or from a run folder holding family.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "family.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no policy family saved here; train a method first (it writes family.json)")
    description = json.loads(path.read_text())
    root = path.parent.resolve()
    factory = description.get("factory")
    if factory:
        module_name, _, func_name = factory.partition(":")
        if not func_name:
            raise ValueError(f"{path}: factory {factory!r} must have the form 'package.module:function'")
        return getattr(importlib.import_module(module_name), func_name)(description, root)
    kind = description.get("type")
    if kind not in _BUILTIN_LOADERS:
        raise ValueError(f"{path}: unknown family type {kind!r}; expected one of {sorted(_BUILTIN_LOADERS)} or a factory")
    return _BUILTIN_LOADERS[kind](description, root)


def _relative(value: str, root: Path) -> str:
    """``value`` relative to ``root`` when it is a path inside it; otherwise unchanged (Hub ids, "embedded")."""
    candidate = Path(value)
    if candidate.is_absolute() or candidate.exists():
        try:
            return str(candidate.resolve().relative_to(root))
        except ValueError:
            return value
    return value


def _absolute(value: str, root: Path) -> str:
    """Undo :func:`_relative`: a relative path that exists under ``root`` becomes absolute."""
    candidate = root / value
    return str(candidate) if not Path(value).is_absolute() and candidate.exists() else value


def _load_checkpoints(description: dict, root: Path) -> CheckpointFamily:
    points = description["points"]
    checkpoints = {tuple(points[tag]): _absolute(v, root) for tag, v in description["checkpoints"].items()}
    return CheckpointFamily(description["name"], checkpoints)


def _load_shared(description: dict, root: Path) -> SharedModelFamily:
    return SharedModelFamily(description["name"], _absolute(description["path"], root))


_BUILTIN_LOADERS: dict[str, Callable[[dict, Path], Any]] = {"checkpoints": _load_checkpoints, "shared": _load_shared}
