"""The process group of a multi-process launch (``torchrun``, ``accelerate launch``), as moalign's stages see it.

One process is the plain case: every function here is then a no-op and torch is never imported. Under a launch
with ``WORLD_SIZE > 1`` the ranks share one run directory: the main rank (``RANK`` 0) decides which stages are
done, writes every stage folder and renames it into place; the others wait at barriers, or take their shard of
a stage's work (:func:`shard`). The process group is the one torch.distributed already has (accelerate's, when
a Trainer made it) or one made here, with the backend accelerate would choose (NCCL on GPUs, Gloo on CPUs), so
the Trainer later finds it and reuses it.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

# a main-rank stage (scoring a dataset, selecting) may take hours while the other ranks wait at a barrier
TIMEOUT_ENV = "MOALIGN_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 6 * 3600


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def is_main() -> bool:
    """True in a single process and on rank 0 of a launch."""
    return rank() == 0


def init() -> None:
    """Join the launch's process group (made once; a no-op in a single process or when it exists)."""
    if world_size() == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0") or 0))
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    dist.init_process_group(backend, timeout=timeout)
    atexit.register(_leave)  # a group left alive at interpreter exit can abort the process (Gloo)


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank is here (no-op in one process)."""
    if world_size() > 1:
        import torch.distributed as dist

        init()
        dist.barrier()


def from_main(value: T) -> T:
    """The main rank's ``value`` on every rank (a picklable object; a sync point, as a barrier)."""
    if world_size() == 1:
        return value
    import torch.distributed as dist

    init()
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first() -> Iterator[None]:
    """The main rank runs the block first and the others after it (a barrier between): for every rank's own
    read of data that the first read downloads or caches (a Hub dataset), so that only one rank fetches it."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def shard(items: Sequence[Any]) -> list:
    """This rank's items: every W-th one from its rank on (rank r of W takes r, r + W, ...). Whole items are
    dealt out, so a batch keeps its composition and its seed and the gathered result equals a one-process
    run's."""
    return list(items[rank()::world_size()])


def gather_blocks(blocks: dict[int, list]) -> list | None:
    """Every rank's ``{start: items}`` (its blocks of a list, keyed by their first index) joined in index order
    on the main rank; None on the others. In one process: the blocks joined."""
    if world_size() == 1:
        parts = [blocks]
    else:
        import torch.distributed as dist

        init()
        parts = [None] * world_size() if is_main() else None
        dist.gather_object(blocks, parts, dst=0)
        if not is_main():
            return None
    merged: dict[int, list] = {}
    for part in parts:
        merged.update(part)
    return [item for start in sorted(merged) for item in merged[start]]


def map_blocks(n: int, block: int, compute: Callable[[list[int]], Sequence[T]]) -> list[T] | None:
    """``compute(indices)`` (one result per index, in order) of items ``0..n-1`` dealt out over the ranks in
    blocks of ``block``, joined in index order on the main rank; None on the others. Each rank makes one call
    on its blocks' indices, so a computation that batches its items in order by a divisor of ``block`` sees
    the batches one process sees. In one process: ``compute`` of every index."""
    starts = block_starts(n, block)
    size = max(1, int(block))
    mine = [i for start in starts for i in range(start, min(start + size, n))]
    values = list(compute(mine)) if mine else []
    if len(values) != len(mine):
        raise ValueError(f"map_blocks: compute returned {len(values)} results for {len(mine)} items")
    pieces, at = {}, 0
    for start in starts:
        count = min(start + size, n) - start
        pieces[start], at = values[at:at + count], at + count
    return gather_blocks(pieces)


def block_starts(n: int, block: int) -> list[int]:
    """This rank's block starts of a list of ``n`` items cut into blocks of ``block`` (every rank's in one
    process)."""
    return shard(range(0, n, max(1, int(block))))
