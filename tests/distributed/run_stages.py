"""Launched by tests/test_pipeline_distributed.py under ``torchrun --nproc_per_node 2``: a main-rank stage, an
all-ranks stage whose ranks each write their share, and a resumed launch that skips both."""

import json
import sys
from pathlib import Path

from moalign import distributed
from moalign.pipeline import Run

root, attempt = Path(sys.argv[1]), sys.argv[2]
calls = Path(sys.argv[1] + f".calls-{distributed.rank()}-{attempt}")
log = []

with Run(root, echo=None) as run:
    def main_only(out: Path) -> None:
        log.append("main_only")
        (out / "value.json").write_text(json.dumps({"rank": distributed.rank()}))

    def every_rank(out: Path) -> None:
        log.append("every_rank")
        upstream = json.loads((run.stage_dir("select") / "value.json").read_text())
        (out / f"shard-{distributed.rank()}.json").write_text(json.dumps({"seen": upstream,
                                                                          "items": distributed.shard(range(5))}))

    run.stage("select", {"x": 1}, main_only)
    run.stage("generate", {"y": 2}, every_rank, depends_on=["select"], ranks="all")
    files = sorted(p.name for p in run.stage_dir("generate").iterdir())
calls.write_text(json.dumps({"log": log, "files": files}))
