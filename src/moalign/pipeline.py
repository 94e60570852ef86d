"""Runs made of stages that survive being killed.

A run directory holds ``config.yaml`` and one folder per finished stage. A stage is computed into a temporary
folder and renamed into place only when complete, with a ``_stage.json`` that records the hash of its inputs.
Rerunning the same command skips every stage whose recorded hash matches; a stage whose inputs changed (its own
config section, or any stage it depends on) reruns, with a message that says why (the changed input keys and
upstream stages, read from the inputs recorded beside the hash). Because a stage's hash includes the hashes of
the stages it reads, a change propagates downstream and nowhere else.

Stage names may contain ``/`` (``"eval/generate/w_0.200_0.800"``): a long loop can then finish one sub-stage
per item, so a run killed halfway resumes at the next item instead of starting the loop again. A name never
leads outside the run directory (no ``..``, no absolute path).

One process at a time works in a run directory: :class:`Run` holds ``run.lock`` (an OS file lock, with the
owner's pid, host and command written inside) for as long as it lives. A second process refuses with a message
naming the owner; a lock left by a killed process is free at the OS level, so the next run takes it over (and
says so) without any pid guessing.

Under a multi-process launch (``torchrun``, ``accelerate launch``; :mod:`moalign.distributed`) the ranks share
the run directory: only the main rank (``RANK`` 0) takes the lock, prints, decides whether a stage is done
(every rank gets its answer), writes ``_stage.json`` and renames the folder into place. A stage is the main
rank's work while the others wait (``ranks="main"``: selection, pairs, metrics) or every rank's on one
temporary folder (``ranks="all"``: a Trainer's distributed training, a generation sharded over the ranks).
A rank killed mid-stage leaves only the temporary folder, which the relaunch removes before it redoes that
stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moalign import distributed
from moalign.config import ConfigError, to_dict
from moalign.io_utils import atomic_dir, atomic_write_json

log = logging.getLogger("moalign.pipeline")

STAGE_FILE = "_stage.json"
LOCK_FILE = "run.lock"


class RunError(RuntimeError):
    """A run directory cannot be used as asked; the message names it and the fix."""


class RunLockedError(RunError):
    """Another live process holds the run directory's lock."""


def inputs_hash(inputs: Any) -> str:
    """Stable short hash of JSON-able inputs (dataclasses are converted first)."""
    blob = json.dumps(to_dict(inputs, for_hash=True), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Run:
    """A run directory and its stages."""

    def __init__(self, root: str | Path, echo: Callable[[str], None] | None = print):
        distributed.init()
        self.root = Path(root)
        self.echo = (echo if distributed.is_main() else None) or (lambda _msg: None)
        make_run_dir(self.root)
        self.lock = hold_run_dir(self.root, echo=self.echo)
        self._release = weakref.finalize(self, self.lock.release) if self.lock is not None else None
        self.timings: dict[str, float] = {}

    def close(self) -> None:
        """Release the run directory's lock now (else when the Run is garbage-collected, or at exit)."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stage_dir(self, name: str) -> Path:
        """The folder of stage ``name``; a name that would lead outside the run directory is refused."""
        if not name or "\\" in name or name.startswith("/") or any(p in ("", ".", "..") for p in name.split("/")):
            raise ValueError(f"stage name {name!r} would lead outside the run directory {self.root} (or is empty); "
                             "a stage name is a relative path of plain parts, e.g. 'eval/generate/w_0.5'")
        return self.root / name

    def stage_hash(self, name: str) -> str | None:
        """The recorded input hash of a finished stage, or None if it has not finished."""
        meta = self.stage_dir(name) / STAGE_FILE
        if not meta.is_file():
            return None
        return json.loads(meta.read_text())["inputs_hash"]

    def stage(
        self,
        name: str,
        inputs: Any,
        compute: Callable[[Path], None],
        depends_on: Iterable[str] = (),
        *,
        ranks: str = "main",
    ) -> Path:
        """Return the folder of stage ``name``, computing it with ``compute(tmp_dir)`` unless already done.

        Under a multi-process launch the main rank decides whether the stage is done (every rank gets its
        answer) and alone writes ``_stage.json`` and renames the folder. ``ranks="main"``: the main rank computes
        while the others wait; ``"all"``: every rank runs ``compute`` on the same temporary folder (a Trainer's
        distributed training, a sharded generation), and the folder is installed once all have returned."""
        if ranks not in ("main", "all"):
            raise ValueError(f"ranks={ranks!r}: 'main' (the main rank computes) or 'all' (every rank does)")
        deps = {dep: self.stage_hash(dep) for dep in depends_on}
        missing = [dep for dep, value in deps.items() if value is None]
        if missing:
            raise RuntimeError(f"stage {name!r} needs stage(s) {missing} to have finished first")
        digest = inputs_hash({"inputs": inputs, "deps": deps})
        final = self.stage_dir(name)
        recorded = self.stage_hash(name)
        if distributed.from_main(recorded == digest):
            self.echo(f"[{name}] done already, skipped")
            return final
        if recorded is not None:
            self.echo(f"[{name}] rerunning: {self.why_changed(name, inputs, deps)}")
        if distributed.world_size() > 1:
            return self._stage_on_ranks(name, final, inputs, deps, digest, compute, ranks)
        self._remove_partials(final)
        start = time.perf_counter()
        with atomic_dir(final) as tmp:
            compute(tmp)
            self._record(name, tmp, inputs, deps, digest, start)
        self.echo(f"[{name}] finished in {self.timings[name]:.1f} s")
        return final

    def _record(self, name: str, tmp: Path, inputs: Any, deps: dict, digest: str, start: float) -> None:
        seconds = time.perf_counter() - start
        record = {"inputs_hash": digest, "seconds": seconds, "deps": deps, "inputs": _jsonable(inputs)}
        atomic_write_json(tmp / STAGE_FILE, record)
        self.timings[name] = seconds

    def _stage_on_ranks(self, name: str, final: Path, inputs: Any, deps: dict, digest: str,
                        compute: Callable[[Path], None], ranks: str) -> Path:
        """The multi-process stage: the main rank owns the temporary folder and its installation; a rank that
        dies mid-stage leaves only that folder, which the next launch removes (no half stage is ever done)."""
        start = time.perf_counter()
        if distributed.is_main():
            self._remove_partials(final)
            with atomic_dir(final) as tmp:
                distributed.from_main(str(tmp))
                compute(tmp)
                distributed.barrier()  # every rank's share is written
                self._record(name, tmp, inputs, deps, digest, start)
            self.echo(f"[{name}] finished in {self.timings[name]:.1f} s")
        else:
            tmp = Path(distributed.from_main(""))
            if ranks == "all":
                compute(tmp)
            distributed.barrier()
        distributed.barrier()  # installed: every rank may read it
        return final

    def _remove_partials(self, final: Path) -> None:
        """Delete temporary folders that a killed run left for this stage (never a finished stage)."""
        for stale in final.parent.glob(f".{final.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
            self.echo(f"[{final.relative_to(self.root)}] removed an unfinished attempt left by a killed run")

    def why_changed(self, name: str, inputs: Any, deps: dict[str, str | None]) -> str:
        """Which recorded inputs (dotted keys) and upstream stages differ from the finished stage ``name``."""
        meta = json.loads((self.stage_dir(name) / STAGE_FILE).read_text())
        reasons = [f"upstream stage {dep!r} changed" for dep, h in deps.items() if meta.get("deps", {}).get(dep) != h]
        if "inputs" in meta:
            changed = _changed_keys(meta["inputs"], _jsonable(inputs))
            shown = ", ".join(changed[:5]) + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else "")
            if changed:
                reasons.insert(0, f"input(s) changed: {shown}")
        return "; ".join(reasons) or "its inputs changed since it ran (config or an upstream stage)"

    def recorded_seconds(self) -> dict[str, float]:
        """Wall time of every finished stage, as recorded when it ran."""
        out = {}
        for meta in sorted(self.root.rglob(STAGE_FILE)):
            out[str(meta.parent.relative_to(self.root))] = json.loads(meta.read_text()).get("seconds", float("nan"))
        return out


def _jsonable(obj: Any) -> Any:
    """The JSON form of ``obj`` as hashed (dataclasses to dicts, tuples to lists, other objects to strings)."""
    return json.loads(json.dumps(to_dict(obj, for_hash=True), sort_keys=True, default=str))


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON trees, with the old and new value when short."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    if old == new:
        return []
    label = prefix or "inputs"
    old_text, new_text = json.dumps(old), json.dumps(new)
    return [f"{label} {old_text} -> {new_text}" if len(old_text) + len(new_text) < 80 else label]


# ----------------------------------------------------------------------------------------------------------
# The run directory: writable, and held by one process at a time
# ----------------------------------------------------------------------------------------------------------


def make_run_dir(root: Path) -> None:
    """Create ``root`` (and missing parents), or ConfigError naming the folder that stops it and the fix."""
    folder = root
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"run_dir {root}: {folder} is a file, not a folder; choose another run_dir=...")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"run_dir {root}: the folder {folder} is not writable (permissions or a read-only file "
                          "system); choose a writable folder with run_dir=..., or fix its permissions")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"run_dir {root}: cannot create it ({err.strerror or err}); choose another run_dir=..., "
                          "or fix the permissions of the folder above it") from None


def main_rank() -> bool:
    """True in a single process and on rank 0 of a multi-process launch (``RANK``, as torchrun/accelerate set)."""
    return distributed.is_main()


def hold_run_dir(root: Path, *, echo: Callable[[str], None] = print, rank0: bool | None = None) -> RunLock | None:
    """Take ``root``'s lock (see the module docstring); None, touching nothing, on a rank other than 0."""
    if not (main_rank() if rank0 is None else rank0):
        return None
    return RunLock.acquire(Path(root), echo=echo)


class RunLock:
    """This process's hold on ``<run_dir>/run.lock``; shared by every :class:`Run` of the process on that folder.

    The OS lock (``flock``) is released by the kernel when the process dies, however it dies, so a stale lock is
    simply one nobody holds: the next process takes it over. ``release`` (the last holder in this process)
    deletes the file while still holding it; an acquirer that raced with the deletion sees that its file is no
    longer the one at the path and tries again, so two processes can never both believe they hold the lock.
    """

    _held: dict[str, RunLock] = {}  # resolved lock path -> this process's lock on it

    def __init__(self, path: Path, key: str, fd: int):
        self.path, self.key, self.fd, self.pid, self.count = path, key, fd, os.getpid(), 1

    @classmethod
    def acquire(cls, root: Path, *, echo: Callable[[str], None] = print) -> RunLock:
        path = root / LOCK_FILE
        key = str(path.resolve())
        held = cls._held.get(key)
        if held is not None and held.pid == os.getpid() and _is_file_at(held.fd, path):
            held.count += 1
            return held
        fd, previous = _lock_file(path, root)
        lock = cls._held[key] = cls(path, key, fd)
        if previous.get("pid") not in (None, os.getpid()):
            echo(f"[run] took over {path}, left by pid {previous['pid']} (no longer running)")
        _write_owner(fd)
        return lock

    def release(self) -> None:
        """Drop one hold; the last one deletes the lock file (while still holding it) and unlocks."""
        self.count -= 1
        if self.count > 0 or self.fd < 0:
            return
        if self._held.get(self.key) is self:
            del self._held[self.key]
        if self.pid == os.getpid() and _is_file_at(self.fd, self.path):  # never from a forked child
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is (still) the file at ``path``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _lock_file(path: Path, root: Path) -> tuple[int, dict]:
    """(fd holding the OS lock on ``path``, the owner record found in it); RunLockedError while another holds it."""
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(f"run_dir {root}: cannot create the lock file {path} ({err.strerror or err}); "
                              "choose a writable run_dir=..., or fix its permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise RunLockedError(_locked_message(root, path, owner)) from None
        if _is_file_at(fd, path):
            return fd, _read_owner(fd)
        os.close(fd)  # the previous owner deleted the file between our open and our lock: lock the new one


def _read_owner(fd: int) -> dict:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_owner(fd: int) -> None:
    import socket
    import sys

    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)


def _locked_message(root: Path, path: Path, owner: dict) -> str:
    who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {owner.get('started', '?')}"
    return (f"run_dir {root} is in use by another moalign process ({who}; lock {path}); two processes in one run "
            "directory would delete each other's unfinished stages: wait for it to finish or stop it, or choose "
            "another run_dir=...")
