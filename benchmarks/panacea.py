"""Panacea's SVD-LoRA against plain PEFT LoRA of the same total rank, measured side by side in one process.

    python benchmarks/panacea.py [--repeats 7] [--device cpu|cuda]

* training step (forward + backward + SGD step) of SVD-LoRA (k = 8, m = 2) vs LoRA (r = 10), on every
  attention and MLP projection, on the embedded model and on a random Llama with hidden size 1024;
  target: ratio <= 1.10;
* generation throughput with one batch of 16 different preferences (one per row) vs 16 copies of one
  preference; target: ratio >= 0.9.

The two variants alternate within each repeat (so machine noise hits both alike) and the medians are
compared. Writes ``benchmarks/results/panacea.md`` (``panacea-<device>.md`` on a GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
K, M = 8, 2


def random_llama(hidden: int, layers: int, vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=int(hidden * 2.75),
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128,
                         max_position_embeddings=512)
    return LlamaForCausalLM(config)


def embedded():
    from moalign.models.load import load_causal_lm

    return load_causal_lm("embedded")


def with_adapter(base_factory, kind: str, device: str):
    from peft import LoraConfig, get_peft_model

    from moalign.models.svd_lora import SVDLoraSpec, set_preference, svd_lora_config

    base = base_factory().to(device)
    if kind == "lora":
        model = get_peft_model(base, LoraConfig(r=K + M, lora_alpha=16, target_modules=TARGETS))
    else:
        model = get_peft_model(base, svd_lora_config(SVDLoraSpec(M), rank=K, alpha=16, target_modules=TARGETS))
        set_preference(model, [0.3, 0.7])
    return model


def time_train_step(model, ids, repeats_inner: int = 3) -> float:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    start = time.perf_counter()
    for _ in range(repeats_inner):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync(ids.device)
    return (time.perf_counter() - start) / repeats_inner


def time_generation(model, tokenizer_ids, lam, new_tokens: int) -> float:
    """Generated tokens per second for one batch, with ``lam`` set (a vector, or one row per sample)."""
    from moalign.models.svd_lora import set_preference

    set_preference(model, lam)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        out = model.generate(input_ids=tokenizer_ids, attention_mask=torch.ones_like(tokenizer_ids),
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        _sync(tokenizer_ids.device)
        elapsed = time.perf_counter() - start
    return (out.shape[0] * (out.shape[1] - tokenizer_ids.shape[1])) / elapsed


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def side_by_side(measure_a, measure_b, repeats: int) -> tuple[float, float]:
    measure_a(), measure_b()  # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(measure_a())
        b.append(measure_b())
    return statistics.median(a), statistics.median(b)


def measure(label: str, factory, batch: int, length: int, device: str, repeats: int, g) -> list[str]:
    """The two table rows (training step, mixed-preference generation) of one model."""
    svd, lora = with_adapter(factory, "svd", device), with_adapter(factory, "lora", device)
    vocab = svd.get_input_embeddings().weight.shape[0]
    ids = torch.randint(3, vocab, (batch, length), generator=g).to(device)
    t_svd, t_lora = side_by_side(lambda: time_train_step(svd, ids), lambda: time_train_step(lora, ids), repeats)
    rows = [f"| train step (s), batch {batch} x {length} tokens | {label} | {t_svd:.4f} | {t_lora:.4f} | "
            f"{t_svd / t_lora:.3f} | <= 1.10 |"]
    prompts = torch.randint(3, vocab, (16, 16), generator=g).to(device)
    mixed = torch.distributions.Dirichlet(torch.ones(M)).sample((16,))
    tps_mixed, tps_same = side_by_side(lambda: time_generation(svd, prompts, mixed, 32),
                                       lambda: time_generation(svd, prompts, torch.tensor([0.3, 0.7]), 32), repeats)
    rows.append(f"| generation (tokens/s), 16 prompts x 32 new tokens: 16 preferences vs one | {label} | "
                f"{tps_mixed:.0f} | {tps_same:.0f} | {tps_mixed / tps_same:.3f} | >= 0.9 |")
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    big = (1024, 2, 8192) if args.device == "cpu" else (2048, 8, 32000)
    models = {"embedded": (embedded, 4, 128), f"random Llama h={big[0]}, {big[1]} layers": (
        lambda: random_llama(*big), 4 if args.device == "cpu" else 16, 128)}
    lines = ["# Panacea SVD-LoRA vs PEFT LoRA (same total rank)", "",
             f"`python benchmarks/panacea.py --device {args.device} --repeats {args.repeats}`; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
             f"{torch.get_num_threads()}, {torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}. "
             f"SVD-LoRA k={K}, m={M}; LoRA r={K + M}; all attention and MLP projections. Medians of "
             f"{args.repeats} alternating repeats.", "",
             "| measurement | model | SVD-LoRA | LoRA / reference | ratio | target |", "|---|---|---|---|---|---|"]
    g = torch.Generator().manual_seed(0)
    for label, (factory, batch, length) in models.items():
        lines += measure(label, factory, batch, length, args.device, args.repeats, g)
    out = Path(args.out) if args.out else RESULTS / ("panacea.md" if args.device == "cpu" else f"panacea-{args.device}.md")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
