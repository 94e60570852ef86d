"""Atomic file and folder writes: a killed process never leaves a half-written output behind.

One primitive, :func:`install`, puts a finished temporary file or folder (written beside the target, so the
rename stays on one file system) in place of the target. It never deletes anything it did not create unless
asked to: with ``overwrite=False`` an existing file or folder at the target is refused with
:class:`FileExistsError` and left untouched. With ``overwrite=True`` a file replaces a file in one atomic
rename; when a folder is involved the old entry is first renamed aside, the new one renamed in, and only then
is the old one deleted (a failure in between puts the old one back).

Temporary files and folders are created private (``mkstemp``/``mkdtemp`` use 0600/0700) and get the usual
permissions of the process's umask (e.g. 0644/0755 under umask 022) before they are installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_FILE_SUFFIX = ".tmp"
TMP_DIR_SUFFIX = ".partial"  # moalign.pipeline finds a killed run's leftovers by this suffix


def atomic_write_text(path: Path, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path`` and rename it over ``path``."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    atomic_file(Path(path), write, overwrite=overwrite)


def atomic_write_json(path: Path, obj: Any, *, overwrite: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n",
                      overwrite=overwrite)


def atomic_file(path: Path, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then :func:`install` it at ``path``.

    The temporary file is removed if ``write`` or the install fails; returns ``path``.
    """
    path = Path(path)
    refuse_existing(path, overwrite=overwrite)  # fail before the (possibly long) write
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_FILE_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        install(tmp, path, overwrite=overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_dir(final: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it is installed at ``final``, on failure removed."""
    final = Path(final)
    refuse_existing(final, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=TMP_DIR_SUFFIX, dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        install(tmp, final, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def install(tmp: Path, final: Path, *, overwrite: bool) -> None:
    """Move the finished ``tmp`` (file or folder, beside ``final``) to ``final``; see the module docstring.

    The existence check runs again just before the rename, so a target created during a long write is
    still refused when ``overwrite`` is False.
    """
    tmp, final = Path(tmp), Path(final)
    if not os.path.lexists(final):
        os.replace(tmp, final)
        return
    refuse_existing(final, overwrite=overwrite)
    if not tmp.is_dir() and not final.is_dir():
        os.replace(tmp, final)  # file over file (or over a link): one atomic rename
        return
    aside = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(final, aside)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(aside, final)
        raise
    _remove(aside)


def refuse_existing(path: Path, *, overwrite: bool, hint: str = "pass overwrite=True") -> None:
    """Raise FileExistsError naming ``path`` and what is there, unless ``overwrite`` or nothing is there."""
    if overwrite or not os.path.lexists(path):
        return
    raise FileExistsError(f"{path} already exists ({describe(Path(path))}); it is left untouched: {hint} to "
                          "replace it, or choose another path")


def describe(path: Path) -> str:
    """'a folder', 'a file', 'a link' or 'something' for what is at ``path``."""
    if path.is_symlink():
        return "a link"
    if path.is_dir():
        return "a folder"
    return "a file" if path.is_file() else "something"


def _remove(path: Path) -> None:
    """Delete a file, a link or a folder tree (the old entry :func:`install` renamed aside)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a written file to disk, so the rename never exposes an empty file after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
