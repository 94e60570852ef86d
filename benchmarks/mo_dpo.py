"""MGDA-Decoupled vs Uniform: step time and peak memory on the same batches (K = 2 and 4, LoRA and full).

    python benchmarks/mo_dpo.py [--model embedded] [--steps 12] [--warmup 2] [--batch 8] [--max-length 128]

Three variants share the model, the data, the batches and the optimiser (AdamW), in one process:

* ``uniform``: equal weights on the linear path (K forwards, one backward of the summed loss);
* ``uniform-grad``: equal weights through MGDA's own gradient path (K backward passes into the (K, D)
  buffer, Gram matrix, combined write) -- the like-for-like baseline;
* ``decoupled``: MGDA-Decoupled (the same path, min-norm weights of the loss-normalised gradients).

A step is what the Trainer does per optimiser step: ``training_step`` (forwards, backwards, weights),
gradient clipping, ``optimizer.step`` and ``zero_grad``. Steps of the three variants are interleaved
(step 1 of each, then step 2 of each, ...) so that load from other processes hits them alike; the median is
reported. Peak memory (over each variant's warm-up steps, which include the optimiser-state and buffer
allocations): on CUDA ``max_memory_allocated``; on CPU the peak resident set size above the level before the
variant's first step, sampled every millisecond, with glibc's mmap threshold pinned at 64 KiB (the script
re-executes itself with ``MALLOC_MMAP_THRESHOLD_``) so that freed tensors leave the RSS at once.

Data: the embedded task's pairs for K objectives scored with the built-in rules (positivity, brevity,
politeness, relevance). Writes ``benchmarks/results/mo_dpo.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

from moalign.config import LoraSettings, ModelConfig, RunConfig, TaskConfig, TrainSettings
from moalign.methods.mgda import MGDAWeighting
from moalign.methods.preference_data import PairSettings, load_pairsets, pairs_stage
from moalign.pipeline import Run
from moalign.train.losses import dpo_pair_loss
from moalign.train.preference_run import build_preference_trainer

RESULTS = Path(__file__).resolve().parent / "results" / "mo_dpo.json"
OBJECTIVES = ["positivity", "brevity", "politeness", "relevance"]
VARIANTS = {"uniform": ("uniform", None), "uniform-grad": ("uniform", True), "decoupled": ("decoupled", None)}


def pairs_for(k: int, work: Path, n_pairs: int) -> dict:
    """K objectives' pairs from the embedded task (built once and cached under ``work``)."""
    task = TaskConfig(objectives=OBJECTIVES[:k], rewards=OBJECTIVES[:k], max_train_samples=1500)
    config = RunConfig(run_dir=str(work / f"pairs-k{k}"), task=task)
    folder = pairs_stage(config, Run(config.run_dir, echo=None), PairSettings(max_pairs_per_objective=n_pairs))
    return load_pairsets(folder, OBJECTIVES[:k])


class PeakMemory:
    """Peak memory while the context is open: CUDA allocator peak, or sampled CPU RSS above the start."""

    def __init__(self, device: str):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self, base: int) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - base)
            time.sleep(0.001)

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, args=(self._rss(),), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = max(self.peak, torch.cuda.max_memory_allocated())
        else:
            self._stop.set()
            self._thread.join()


def make_trainer(args, pairs, variant: str, lora: int, out: Path):
    mode, force = VARIANTS[variant]
    settings = TrainSettings(learning_rate=1e-5, max_steps=args.steps + args.warmup, per_device_train_batch_size=args.batch,
                             max_length=args.max_length, lora=LoraSettings(r=lora, alpha=2.0 * lora if lora else 16.0))
    trainer = build_preference_trainer(ModelConfig(name_or_path=args.model, dtype=args.dtype), pairs,
                                       loss_fn=dpo_pair_loss(0.5), weighting=MGDAWeighting(mode, len(pairs)),
                                       settings=settings, output_dir=out / variant, seed=0,
                                       per_objective_gradients=force, training_overrides={"disable_tqdm": True})
    trainer.model.to(trainer.args.device)
    trainer.create_optimizer_and_scheduler(num_training_steps=settings.max_steps)
    return trainer


def one_step(trainer, batch) -> float:
    """Seconds for one optimiser step as the Trainer takes it."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    trainer.training_step(trainer.model, batch)
    torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), 1.0)
    trainer.optimizer.step()
    trainer.model.zero_grad()
    sync()
    return time.perf_counter() - start


def bench_setting(args, k: int, lora: int, work: Path) -> list[dict]:
    pairs = pairs_for(k, work, args.pairs)
    trainers = {v: make_trainer(args, pairs, v, lora, work / f"k{k}-r{lora}") for v in VARIANTS}
    first = next(iter(trainers.values()))
    n_items = args.batch * (args.steps + args.warmup)
    batches = [first.data_collator([first.train_dataset[(i * args.batch + j) % len(first.train_dataset)]
                                    for j in range(args.batch)]) for i in range(n_items // args.batch)]
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    peaks: dict[str, int] = {}
    for v, trainer in trainers.items():  # warm-up, and the memory peak of each variant on its own
        with PeakMemory(trainer.args.device.type) as peak:
            for batch in batches[: args.warmup]:
                one_step(trainer, trainer._prepare_inputs(batch))
        peaks[v] = peak.peak
    for batch in batches[args.warmup:]:
        for v, trainer in trainers.items():
            times[v].append(one_step(trainer, trainer._prepare_inputs(batch)))
    params = sum(p.numel() for p in first.model.parameters() if p.requires_grad)
    return [{"K": k, "adapter": f"LoRA r={lora}" if lora else "full", "trainable_params": params, "variant": v,
             "step_s_median": statistics.median(ts), "step_s_all": ts, "peak_mem_bytes": peaks[v]}
            for v, ts in times.items()]


def table(rows: list[dict]) -> str:
    lines = ["| K | adapter | trainable params | variant | step (ms, median) | x uniform | x uniform-grad | peak mem (MiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        same = {r["variant"]: r for r in rows if r["K"] == row["K"] and r["adapter"] == row["adapter"]}
        ratio = row["step_s_median"] / same["uniform"]["step_s_median"]
        ratio_g = row["step_s_median"] / same["uniform-grad"]["step_s_median"]
        lines.append(f"| {row['K']} | {row['adapter']} | {row['trainable_params']:,} | {row['variant']} | "
                     f"{1000 * row['step_s_median']:.1f} | {ratio:.3f} | {ratio_g:.3f} | "
                     f"{row['peak_mem_bytes'] / 2**20:.1f} |")
    return "\n".join(lines)


def main() -> None:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # see the module docstring: RSS must follow live tensors
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=128, help="pairs per objective")
    parser.add_argument("--lora", type=int, default=8, help="LoRA rank of the LoRA setting")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "moalign" / "bench_mo_dpo"))
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for k in (2, 4):
        for lora in (args.lora, 0):
            rows.extend(bench_setting(args, k, lora, Path(args.work)))
            print(table(rows), flush=True)
    facts = {"machine": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
             "torch_threads": args.threads, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
             "torch": torch.__version__, "args": vars(args)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"facts": facts, "rows": rows}, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
