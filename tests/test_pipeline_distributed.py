"""The stage pipeline under a real 2-process launch (torchrun, Gloo on the CPU): the main rank alone computes a
main-rank stage and installs every stage folder; an all-ranks stage gets each rank's share in one folder;
a relaunch skips both on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "distributed" / "run_stages.py"


def torchrun(*args: str, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                           "--standalone", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_main_and_all_rank_stages_and_a_relaunch_that_skips_them(tmp_path):
    root = tmp_path / "run"
    for attempt in ("1", "2"):
        done = torchrun(str(SCRIPT), str(root), attempt)
        assert done.returncode == 0, done.stderr[-3000:]
    first = [json.loads(Path(f"{root}.calls-{r}-1").read_text()) for r in (0, 1)]
    assert first[0]["log"] == ["main_only", "every_rank"] and first[1]["log"] == ["every_rank"]
    assert first[0]["files"] == first[1]["files"] == ["_stage.json", "shard-0.json", "shard-1.json"]
    shards = [json.loads((root / "generate" / f"shard-{r}.json").read_text()) for r in (0, 1)]
    assert shards[0]["items"] == [0, 2, 4] and shards[1]["items"] == [1, 3]
    assert shards[1]["seen"] == {"rank": 0}  # rank 1 read the main rank's installed stage
    second = [json.loads(Path(f"{root}.calls-{r}-2").read_text()) for r in (0, 1)]
    assert second[0]["log"] == second[1]["log"] == []  # done stages are skipped on every rank
    assert not (root / "run.lock").exists() and not list(root.glob(".*partial"))


def test_fsdp_asked_for_but_not_applied_is_a_loud_warning(monkeypatch):
    """On CPUs accelerate leaves FSDP off and trains plain data parallel: the run says so."""
    import warnings
    from types import SimpleNamespace

    from moalign.train.args import ShardingDroppedWarning, check_sharding

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    dropped = SimpleNamespace(args=SimpleNamespace(fsdp="full_shard"), is_fsdp_enabled=False)
    with pytest.warns(ShardingDroppedWarning, match="data parallel without sharding"):
        assert check_sharding(dropped) is dropped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_sharding(SimpleNamespace(args=SimpleNamespace(fsdp="full_shard"), is_fsdp_enabled=True))
        check_sharding(SimpleNamespace(args=SimpleNamespace(fsdp=""), is_fsdp_enabled=False))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # an accelerate FSDP config, on a CPU
    with pytest.warns(ShardingDroppedWarning):
        check_sharding(SimpleNamespace(args=SimpleNamespace(fsdp=""), is_fsdp_enabled=False))


def test_blocks_are_dealt_out_computed_once_per_rank_and_gathered_in_order_on_the_main_rank(tmp_path):
    """``map_blocks``: rank 0 computes blocks 0 and 2, rank 1 block 1, and the main rank alone gets every result
    in index order; sharded scoring keeps each reward batch whole (a batch-sensitive reward scores as in one
    process); ``main_first`` lets the other ranks in only after the main rank's block ran."""
    done = torchrun(str(SCRIPT.parent / "share_and_gather.py"), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["seen"] == [0, 1, 2, 3, 8, 9, 10] and ranks[1]["seen"] == [4, 5, 6, 7]
    assert ranks[0]["gathered"] == [i * i for i in range(11)] and ranks[1]["gathered"] is None
    assert ranks[0]["sharded"] == ranks[0]["one_process"] and ranks[1]["sharded"] is None
    assert [r["found_first"] for r in ranks] == [False, True]


def test_in_one_process_map_blocks_is_one_call_on_every_index():
    from moalign import distributed

    calls = []
    assert distributed.map_blocks(5, 2, lambda idx: calls.append(list(idx)) or [-i for i in idx]) == [0, -1, -2, -3, -4]
    assert calls == [[0, 1, 2, 3, 4]]
    with pytest.raises(ValueError, match="3 results for 5 items"):
        distributed.map_blocks(5, 2, lambda idx: [0, 1, 2])
