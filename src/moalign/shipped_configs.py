"""The YAML configs shipped inside the package (``moalign/configs/{embedded,real,accelerate}/*.yaml``).

A source checkout reaches them as ``configs/...`` too (a symlink at the repository root), a wheel install only
here. :func:`resolve_config` lets every command take either a path or a shipped name (``embedded/paretohqd``),
so a README line works the same in both. This module sits next to :mod:`moalign.config` (it imports nothing
else), so the evaluation harness and the method registry can both use it.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from moalign.config import ConfigError


def shipped_config_dir() -> Path:
    """The folder holding the shipped configs (inside the installed package)."""
    return Path(str(resources.files("moalign") / "configs"))


def shipped_configs() -> list[str]:
    """Every shipped config by name, ``folder/stem`` (``embedded/paretohqd``), sorted."""
    root = shipped_config_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.glob("*/*.yaml"))


def shipped_config(name: str) -> Path | None:
    """The file of shipped config ``name`` (``embedded/dpo``, ``embedded/dpo.yaml``, ``configs/embedded/dpo.yaml``),
    or None when there is none."""
    name = name.replace("\\", "/").removeprefix("./").removeprefix("configs/")
    if not name.endswith(".yaml"):
        name += ".yaml"
    if ".." in name.split("/"):
        return None
    path = shipped_config_dir() / name
    return path if path.is_file() else None


def resolve_config(arg: str | Path) -> Path:
    """``arg`` if it is a file, else the shipped config it names; a ConfigError lists the shipped ones (with a
    did-you-mean) when it is neither."""
    path = Path(arg)
    if path.is_file():
        return path
    shipped = shipped_config(str(arg))
    if shipped is not None:
        return shipped
    names = shipped_configs()
    key = str(arg).removeprefix("configs/").removesuffix(".yaml")
    same_stem = [n for n in names if "/" not in key and n.split("/")[1] == key]  # "dpo" -> "embedded/dpo"
    close = same_stem[:1] or difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{arg}: config file not found and not a shipped config; pass the path of a YAML file or "
                      f"one of the shipped configs: {', '.join(names)}.{hint}")
