"""Names that may be Hugging Face Hub ids: fail at once, with one plain message, when one cannot be reached.

``from_pretrained`` / ``load_dataset`` on a Hub id that is neither a local folder nor in the local cache
retries for about a minute without a network and then raises a generic OSError that names neither the
setting nor a way out. :func:`check_hub_source` runs before such a load: a name that looks like a path but is
no folder, or a Hub id that is not cached while the Hub is unreachable (offline mode, or its host name does
not resolve: milliseconds without a network), raises :class:`HubUnreachableError` naming the model, the
setting that names it and how to point it at a local copy. A cached id, a local folder and a reachable Hub
load as before.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
FILE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".safetensors", ".bin", ".yaml")


class HubUnreachableError(OSError):
    """A model, tokenizer or dataset named by a Hub id that cannot be loaded here (not local, not cached,
    no Hub); the message says which setting names it and how to use a local copy instead."""


def written_as_path(name: str) -> bool:
    """A name whose spelling is a path's, never a Hub id's (``./x``, ``/x``, ``~/x``, ``a\\b``, ``a/b/c``)."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def looks_like_path(name: str) -> bool:
    """A name meant as a path (written as one, a data/weights file name, or no valid Hub id) rather than a
    Hub id."""
    return written_as_path(name) or name.endswith(FILE_SUFFIXES) or not HUB_ID.match(name)


def check_hub_source(name: str, *, what: str, setting: str, repo_type: str = "model",
                     revision: str | None = None) -> None:
    """Raise :class:`HubUnreachableError` when ``name`` cannot possibly load (module docstring); else return.

    ``what``: "model", "tokenizer", "reward model", "dataset"; ``setting``: the config field or option that
    names it (e.g. ``model.name_or_path``), quoted in the message.
    """
    if Path(name).expanduser().exists():
        return
    if looks_like_path(name):
        raise HubUnreachableError(f"{setting}={name!r}: no such folder or file (the {what} is read from a local "
                                  "path when the name is written as one); check the path, or give a Hub id")
    if _cached(name, repo_type, revision):
        return
    reason = _hub_unreachable()
    if reason is not None:
        raise HubUnreachableError(
            f"{setting}={name!r}: the {what} is not a local folder, not in the Hugging Face cache, and the Hub "
            f"cannot be reached ({reason}). Point {setting} at a local copy: a folder made on a machine with "
            f"network by `hf download {name} --local-dir <folder>`"
            f"{' --repo-type dataset' if repo_type == 'dataset' else ''} (or `save_pretrained`), then copied here"
        )


def _cached(name: str, repo_type: str, revision: str | None) -> bool:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot_download(name, repo_type=repo_type, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, ValueError, OSError):
        return False
    return True


def offline_mode() -> bool:
    """Whether the Hugging Face libraries are told not to use the network (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or any(
        os.environ.get(var, "").upper() in ("1", "ON", "YES", "TRUE") for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_unreachable() -> str | None:
    """Why the Hub cannot be reached (offline mode, or its host name does not resolve), or None."""
    from huggingface_hub import constants

    if offline_mode():
        return "HF_HUB_OFFLINE is set"
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as err:
        return f"{host} does not resolve: {err.strerror or err}"
    return None
