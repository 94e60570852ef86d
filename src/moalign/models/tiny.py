"""The embedded tiny model: a Llama-style causal LM and its tokenizer, built and pre-trained offline.

``ensure_tiny_model()`` returns a folder that ``from_pretrained`` loads like any Hugging Face model. On first
use it generates the pre-training dialogues (:mod:`moalign.data.embedded`), trains a byte-level BPE tokenizer
on them, pre-trains a freshly initialised ``LlamaForCausalLM`` with the transformers ``Trainer`` and caches the
result under ``$MOALIGN_CACHE`` (default ``~/.cache/moalign``) in ``tiny-<preset>-<key>``. The key hashes the
recipe, a build version and the corpus itself, so any change to either rebuilds. The folder is built in a
temporary sibling and renamed into place; a file lock makes concurrent callers wait for one build. Under a
multi-process launch (torchrun, ``accelerate launch``) the build runs in a child process with the launcher's
environment removed, so its ``Trainer`` trains one process on the CPU instead of joining the launch's process
group (DDP, DeepSpeed or FSDP would wait there for ranks that are blocked on the lock).

Deterministic: the corpus and tokenizer are exact functions of the seed; the weights are too on a given
machine and torch thread count (float reductions may differ in the last bits across thread counts).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

BUILD_VERSION = 1  # bump when the build code (not the recipe or the corpus) changes what gets built
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the built model (all part of the cache key)."""

    num_dialogues: int = 16000
    tokenizer_dialogues: int = 4000  # the BPE merges are learnt on the first dialogues only (speed)
    vocab_size: int = 1024
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    block_size: int = 128  # dialogues are packed, separated by EOS, into blocks of this many tokens
    batch_size: int = 8
    max_steps: int = 800
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    seed: int = 0


PRESETS: dict[str, TinyRecipe] = {
    # ~2M parameters; ~3 minutes on one idle CPU thread (800 steps measured 96% on-topic samples, 600: 82%)
    "default": TinyRecipe(),
    # seconds; for tests of the build/cache machinery (its samples are not meant to be good)
    "test": TinyRecipe(
        num_dialogues=600, tokenizer_dialogues=600, vocab_size=384, hidden_size=32, intermediate_size=64,
        num_layers=2, num_heads=4, num_kv_heads=2, block_size=64, batch_size=8, max_steps=20, warmup_steps=2,
    ),
}


def default_cache_dir() -> Path:
    """``$MOALIGN_CACHE`` if set, else ``~/.cache/moalign``."""
    return Path(os.environ.get("MOALIGN_CACHE") or Path.home() / ".cache" / "moalign").expanduser()


@lru_cache(maxsize=8)
def _dialogues(num: int, seed: int) -> tuple[str, ...]:
    from moalign.data.embedded.builder import pretraining_dialogues

    return tuple(pretraining_dialogues(num, seed))


def recipe_key(recipe: TinyRecipe) -> str:
    """Hash of the recipe, the build version and the generated corpus (12 hex digits)."""
    from moalign.data.embedded.builder import corpus_digest

    payload = json.dumps({"recipe": asdict(recipe), "build_version": BUILD_VERSION}, sort_keys=True)
    digest = corpus_digest(list(_dialogues(recipe.num_dialogues, recipe.seed)))
    return hashlib.sha256(f"{payload}|{digest}".encode()).hexdigest()[:12]


def ensure_tiny_model(cache_dir: str | Path | None = None, preset: str = "default") -> Path:
    """The folder of the built tiny model for ``preset``, building it first when it is not cached."""
    if preset not in PRESETS:
        raise ValueError(f"unknown tiny-model preset {preset!r}; choose one of {sorted(PRESETS)}")
    recipe = PRESETS[preset]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"tiny-{preset}-{recipe_key(recipe)}"
    if _is_complete(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".{final.name}.lock"):
        if not _is_complete(final):  # another process may have finished it while we waited
            for stale in root.glob(f".{final.name}.*.partial"):  # left by a killed build (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=root))
            try:
                if _under_a_launch():
                    _build_in_a_clean_process(tmp, preset)
                else:
                    build_tiny_model(tmp, recipe)
                tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model folder
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return final


# What torchrun and ``accelerate launch`` set for their ranks; the Trainer reads them to join the launch.
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                    "ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_PREFIXES = ("ACCELERATE_", "TORCHELASTIC_", "FSDP_")


def _under_a_launch() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _build_in_a_clean_process(out_dir: Path, preset: str) -> None:
    """``build_tiny_model`` in a child process that sees no launcher variables (one process, on the CPU)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES and not k.startswith(LAUNCH_PREFIXES)}
    done = subprocess.run([sys.executable, "-m", "moalign.models.tiny", str(out_dir), preset], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the tiny model (preset {preset!r}) in a child process failed:\n{done.stderr[-4000:]}")


def _is_complete(folder: Path) -> bool:
    return (folder / "moalign_build.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock (POSIX); where ``fcntl`` is missing, no lock (the rename stays atomic)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_tiny_model(out_dir: str | Path, recipe: TinyRecipe = PRESETS["default"]) -> Path:
    """Generate the corpus, train the tokenizer, pre-train the model; save both and a build record in ``out_dir``."""
    out_dir = Path(out_dir)
    start = time.perf_counter()
    texts = list(_dialogues(recipe.num_dialogues, recipe.seed))
    tokenizer = train_tokenizer(texts[: recipe.tokenizer_dialogues], recipe.vocab_size, recipe.block_size)
    blocks = pack_blocks(tokenizer, texts, recipe.block_size)
    model = init_model(recipe, tokenizer)
    final_loss = pretrain(model, blocks, recipe, out_dir / "_trainer")
    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    record = {
        "recipe": asdict(recipe),
        "build_version": BUILD_VERSION,
        "key": recipe_key(recipe),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_blocks": len(blocks),
        "final_train_loss": final_loss,
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    (out_dir / "moalign_build.json").write_text(json.dumps(record, indent=2) + "\n")
    return out_dir


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int):
    """A byte-level BPE tokenizer (no unknown tokens) with ``<pad>``, ``<s>``, ``</s>``, as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length * 2, **SPECIAL_TOKENS)


def pack_blocks(tokenizer, texts: list[str], block_size: int) -> list[list[int]]:
    """Concatenate ``text + EOS`` token streams and cut them into full blocks (the remainder is dropped)."""
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    return [stream[i : i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def init_model(recipe: TinyRecipe, tokenizer):
    """A freshly initialised ``LlamaForCausalLM`` (seeded) sized by the recipe."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_kv_heads,
        max_position_embeddings=recipe.block_size * 2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(recipe.seed)
    return LlamaForCausalLM(config)


class _Blocks:
    """A map-style dataset of packed blocks; labels equal the inputs (the model shifts them)."""

    def __init__(self, blocks: list[list[int]]):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        import torch

        ids = torch.tensor(self.blocks[i], dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone()}


def pretrain(model, blocks: list[list[int]], recipe: TinyRecipe, work_dir: Path) -> float:
    """Causal-LM pre-training with the transformers ``Trainer`` (cosine schedule, no checkpoints); last logged loss."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    args = TrainingArguments(
        output_dir=str(work_dir),
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=recipe.warmup_steps,
        weight_decay=0.01,
        logging_steps=max(1, recipe.max_steps // 10),
        save_strategy="no",
        report_to="none",
        seed=recipe.seed,
        data_seed=recipe.seed,
        use_cpu=True,
        dataloader_num_workers=0,
        bf16=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Blocks(blocks), data_collator=default_data_collator)
    trainer.train()
    model.eval()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return round(float(losses[-1]), 4)


if __name__ == "__main__":  # the child process of _build_in_a_clean_process: python -m moalign.models.tiny DIR PRESET
    build_tiny_model(sys.argv[1], PRESETS[sys.argv[2]])
