"""Per-objective gradient buffers: flat (K, D) rows of the trainable parameters, their Gram matrix, and the
same for this rank's shards when FSDP2 splits every parameter (DTensors) over the ranks.

Used by the MGDA family's gradient path in :mod:`moalign.train.preference`. Written here because neither torch
nor accelerate keeps several objectives' gradients side by side: FSDP2 and DDP reduce one ``p.grad``.
"""

from __future__ import annotations

import torch


def add_flat(row: torch.Tensor, grads, params, scale: float) -> torch.Tensor:
    """row += scale * concat(flattened grads); a parameter without a gradient contributes zeros."""
    offset = 0
    for g, p in zip(grads, params, strict=True):
        if g is not None:
            row[offset : offset + p.numel()].add_(g.reshape(-1).to(row.dtype), alpha=scale)
        offset += p.numel()
    return row


def gram_matrix(rows: torch.Tensor, block: int = 1 << 22) -> torch.Tensor:
    """``rows @ rows.T`` accumulated in float64, a block of columns at a time.

    The min-norm weights of two nearly parallel gradients hang on the Gram's low digits (a float32 product
    moved MGDA's first weight by 6e-5, enough for Adam to flip elements where the objectives cancel), and a
    float64 copy of the whole (K, D) buffer would triple its memory.
    """
    gram = torch.zeros(rows.shape[0], rows.shape[0], dtype=torch.float64, device=rows.device)
    for start in range(0, rows.shape[1], block):
        part = rows[:, start : start + block].double()
        gram += part @ part.T
    return gram


def is_dtensor(t: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def local_part(p: torch.Tensor) -> torch.Tensor:
    """This rank's part of a parameter: its local shard under FSDP2, the parameter itself otherwise."""
    return p.to_local() if is_dtensor(p) else p


def sum_over_shards(partial_gram: torch.Tensor, param) -> torch.Tensor:
    """The full Gram matrix from each rank's (K, K) Gram over its disjoint shards (FSDP2's 1-D mesh)."""
    mesh = param.device_mesh
    if mesh.ndim != 1:
        raise ValueError("per-objective gradients under FSDP2 support a 1-D device mesh (plain sharding), not "
                         f"HSDP's {mesh.ndim}-D mesh, whose replicas would be counted twice; see docs/methods/mgda.md")
    torch.distributed.all_reduce(partial_gram, group=mesh.get_group())
    return partial_gram


def as_shard_of(piece: torch.Tensor, param) -> torch.Tensor:
    """``piece`` (this rank's local values) as the gradient DTensor of the sharded ``param``."""
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(piece.contiguous(), param.device_mesh, param.placements, run_check=False,
                              shape=param.shape, stride=param.stride())


def unflatten(flat: torch.Tensor, params) -> list[torch.Tensor]:
    """The pieces of a flat (D,) vector shaped and typed as each parameter (the inverse of ``add_flat``)."""
    pieces, offset = [], 0
    for p in params:
        pieces.append(flat[offset : offset + p.numel()].view_as(p).to(p.dtype))
        offset += p.numel()
    return pieces
