"""Data-parallel generation and scoring: the evaluation's generate + score stages with 1 and with N processes
on the same prompts, side by side.

    python benchmarks/scale.py [--prompts 96] [--procs 2] [--repeats 2] [--max-new-tokens 32]

Each repeat runs ``moalign eval configs/embedded/eval_base.yaml`` into a fresh run folder, once in one process
and once under ``torchrun --nproc_per_node N`` (Gloo on the CPU, NCCL on GPUs), with the embedded model at 3
preferences; the time is the sum of the ``eval/generate/*`` and ``eval/score/*`` stages' recorded seconds
(the main rank's wall time, which includes waiting for the other ranks). The outputs of the two launches
are compared byte for byte: the sharding deals out whole generation batches and whole reward batches, so
they must be identical. On a 2-core CPU the ceiling is ~2x; the speed-up there is bounded by the cores the
two processes share with anything else running. Writes ``benchmarks/results/scale.md``
(``scale-<device>.md`` on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def launch(run_dir: Path, procs: int, prompts: int, new_tokens: int) -> float:
    """Evaluate the embedded base model in ``run_dir`` with ``procs`` processes; the stages' seconds."""
    overrides = [f"run_dir={run_dir}", f"task.num_test_prompts={prompts}", "eval.grid=list:0,1;0.5,0.5;1,0",
                 f"eval.generation.max_new_tokens={new_tokens}", "eval.generation.batch_size=8", "eval.progress=false",
                 "eval.win_rate=false", "eval.stats_samples=40"]
    entry = ["-m", "moalign", "eval", "configs/embedded/eval_base.yaml", *overrides]
    command = [sys.executable, *entry] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *entry]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    seconds = 0.0
    for record in run_dir.glob("eval/*/*/_stage.json"):
        if record.parent.parent.name in ("generate", "score"):
            seconds += json.loads(record.read_text())["seconds"]
    return seconds


def outputs(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.glob("eval/*/*/*.jsonl"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    times: dict[int, list[float]] = {1: [], args.procs: []}
    identical = True
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            runs = {}
            for procs in (1, args.procs):  # alternate within each repeat
                run_dir = Path(tmp) / f"r{repeat}-p{procs}"
                times[procs].append(launch(run_dir, procs, args.prompts, args.max_new_tokens))
                runs[procs] = outputs(run_dir)
            identical &= runs[1] == runs[args.procs]
            for folder in Path(tmp).iterdir():
                shutil.rmtree(folder)
    one, many = statistics.median(times[1]), statistics.median(times[args.procs])
    lines = [
        "# Data-parallel generation + scoring (evaluation stages)",
        "",
        f"`python benchmarks/scale.py --prompts {args.prompts} --procs {args.procs} --repeats {args.repeats} "
        f"--max-new-tokens {args.max_new_tokens}`; {device}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; the embedded model, 3 preferences x {args.prompts} prompts, batches of 8, "
        "two offline rewards. Seconds: the median over repeats of the generate + score stages' recorded time.",
        "",
        "| processes | seconds (median) | runs | speed-up |",
        "|---|---|---|---|",
        f"| 1 | {one:.1f} | {', '.join(f'{t:.1f}' for t in times[1])} | 1.00x |",
        f"| {args.procs} | {many:.1f} | {', '.join(f'{t:.1f}' for t in times[args.procs])} | {one / many:.2f}x |",
        "",
        f"Outputs of the two launches identical byte for byte: {'yes' if identical else 'NO'}.",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("scale.md" if device == "cpu" else f"scale-{device}.md")).write_text(text, encoding="utf-8")
    print(text)
    if not identical:
        sys.exit("the multi-process outputs differ from the one-process outputs")


if __name__ == "__main__":
    main()
