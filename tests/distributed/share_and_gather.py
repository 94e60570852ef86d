"""Launched by tests/test_pipeline_distributed.py under ``torchrun --nproc_per_node 2``: ``map_blocks`` and the
sharded reward scoring built on it, each against the one-process answer, and ``main_first``'s order."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from moalign import distributed
from moalign.rewards.base import score_matrix, score_matrix_on_ranks

out = Path(sys.argv[1])
rank = distributed.rank()


class BatchSensitive:
    """A reward whose score depends on the batch a row lands in (as a padded reward model's may): equal
    scores mean equal batches."""

    name = "batch_sensitive"
    spec = SimpleNamespace(batch_size=3)

    def __call__(self, prompts, responses):
        lengths = np.array([len(r) for r in responses], dtype=float)
        batch_sums = [lengths[i - i % 3:i - i % 3 + 3].sum() for i in range(len(lengths))]
        return lengths + 1e-3 * np.array(batch_sums)


seen: list[int] = []


def squares(indices: list[int]) -> list[int]:
    seen.extend(indices)
    return [i * i for i in indices]


gathered = distributed.map_blocks(11, 4, squares)
prompts = [f"p{i}" for i in range(70)]
responses = ["x" * (i * 7 % 13 + 1) for i in range(70)]
sharded = score_matrix_on_ranks([BatchSensitive()], prompts, responses)
marker = out.with_suffix(".first")
with distributed.main_first():
    found_first = marker.exists()
    if distributed.is_main():
        marker.write_text("main")
record = {"seen": seen, "gathered": gathered, "found_first": found_first,
          "sharded": None if sharded is None else sharded.tolist(),
          "one_process": score_matrix([BatchSensitive()], prompts, responses).tolist()}
Path(f"{out}-{rank}.json").write_text(json.dumps(record))
