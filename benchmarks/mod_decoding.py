"""MOD decoding with K = 2 and 3 LoRA experts: one batched forward per token vs K separate forwards per token,
and vs decoding with one adapter alone (plain ``model.generate``), the same prompts and lengths, side by side.

    python benchmarks/mod_decoding.py [--repeats 5] [--device cpu|cuda]

Both MOD variants decode the same tokens (tests/models/test_mod_decoding.py); the table gives generated tokens
per second (batch rows x new tokens / wall time) on the embedded model and on a random Llama with hidden size
1024, 2 layers. Variants alternate within each repeat and the medians are compared. Target (issue 9): on a
CPU (compute-bound) K-expert MOD costs <= 1.1 x K times one adapter's decode; on a GPU (memory-bound) well
under K times. Writes ``benchmarks/results/mod_decoding.md`` (``mod_decoding-<device>.md`` on a GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panacea import TARGETS, embedded, random_llama, side_by_side  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NEW_TOKENS, BATCH, PROMPT = 32, 8, 32


def lora_experts(factory, device: str, k: int):
    """One PEFT model with ``k`` random LoRA experts (r = 8 on every projection)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(factory(), LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS), adapter_name="expert0")
    for i in range(1, k):
        model.add_adapter(f"expert{i}", LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS))
    g = torch.Generator().manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data = torch.randn(param.shape, generator=g) * 0.01
    return model.to(device).eval()


def time_mod(experts, ids, k: int) -> float:
    from moalign.models.mod_decoding import mod_generate

    start = time.perf_counter()
    out = mod_generate(experts, [1.0 / k] * k, ids, torch.ones_like(ids), max_new_tokens=NEW_TOKENS)
    _sync(ids.device)
    return ids.shape[0] * (out.shape[1] - ids.shape[1]) / (time.perf_counter() - start)


def time_plain(model, ids) -> float:
    model.set_adapter("expert0")
    with torch.no_grad():
        start = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        _sync(ids.device)
    return ids.shape[0] * (out.shape[1] - ids.shape[1]) / (time.perf_counter() - start)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(label: str, factory, device: str, repeats: int, g, k: int) -> list[str]:
    from moalign.models.mod_decoding import LoraExperts, ModelExperts

    model = lora_experts(factory, device, k)
    names = [f"expert{i}" for i in range(k)]
    batched, separate = LoraExperts(model, names), ModelExperts([model] * k, names)
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.randint(3, vocab, (BATCH, PROMPT), generator=g).to(device)
    tps_batched, tps_separate = side_by_side(lambda: time_mod(batched, ids, k), lambda: time_mod(separate, ids, k),
                                             repeats)
    # one adapter alone on its own copy: switching the shared model's active adapter would change MOD's path
    plain = lora_experts(factory, device, 1)
    tps_mod, tps_plain = side_by_side(lambda: time_mod(batched, ids, k), lambda: time_plain(plain, ids), repeats)
    cost = tps_plain / tps_mod  # MOD's time per token in units of one adapter's decode
    target = 1.1 * k
    rows = [f"| {label} | {k} | MOD batched (1 forward of {k}B rows) vs {k} separate forwards | {tps_batched:.0f} | "
            f"{tps_separate:.0f} | {tps_batched / tps_separate:.2f} | |",
            f"| {label} | {k} | MOD batched vs one adapter's plain `generate` | {tps_mod:.0f} | {tps_plain:.0f} | "
            f"cost {cost:.2f} x one decode | <= {target:.1f}: {'met' if cost <= target else 'MISSED'} |"]
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    models = {"embedded": embedded, "random Llama h=1024, 2 layers": lambda: random_llama(1024, 2, 8192)}
    lines = ["# MOD decoding: K = 2 and 3 LoRA experts, batched vs separate forwards vs one adapter", "",
             f"`python benchmarks/mod_decoding.py --device {args.device} --repeats {args.repeats}`; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
             f"{torch.get_num_threads()}, {torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}. "
             f"Greedy, w uniform, reverse KL, cumulative scores; {BATCH} prompts x {PROMPT} tokens, "
             f"{NEW_TOKENS} new tokens; LoRA r = 8 on every projection. Generated tokens/s (rows x new tokens / "
             f"s), medians of {args.repeats} alternating repeats.", "",
             "| model | K | comparison | first (tok/s) | second (tok/s) | ratio | target |",
             "|---|---|---|---|---|---|---|"]
    g = torch.Generator().manual_seed(0)
    for label, factory in models.items():
        for k in (2, 3):
            lines += measure(label, factory, args.device, args.repeats, g, k)
    name = "mod_decoding.md" if args.device == "cpu" else f"mod_decoding-{args.device}.md"
    out = Path(args.out) if args.out else RESULTS / name
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
