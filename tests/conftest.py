"""Shared test set-up: one torch thread (2-core machines), no network, and a tiny random causal LM.

The ``tiny_lm_dir`` fixture saves a randomly initialised Llama-style model (~100k parameters) and a byte-level
BPE tokenizer to a folder, so every test that needs a model goes through the real ``from_pretrained`` path
without downloading anything and without waiting for the pre-trained embedded model.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

TINY_TEXT = [
    "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast and salt, then bake it.",
    "\n\nHuman: What is a good book?\n\nAssistant: A wonderful, delightful story is a great choice.",
    "\n\nHuman: Tell me about the sea.\n\nAssistant: The sea is vast, calm and beautiful.",
    "\n\nHuman: Can you help me?\n\nAssistant: Sure. I am happy to help you today.",
] * 20


def build_tiny_lm(path, vocab_size: int = 300, seed: int = 0):
    """Save a random tiny Llama and a BPE tokenizer trained on ``TINY_TEXT`` to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TINY_TEXT, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """Folder with a tiny random causal LM + tokenizer, loadable with ``from_pretrained``."""
    return str(build_tiny_lm(tmp_path_factory.mktemp("tiny_lm")))


@pytest.fixture(scope="module")
def lora_experts(tiny_lm_dir, tmp_path_factory):
    """Two saved LoRA adapters of the tiny LM (random, distinct B, so each changes the model), named as the
    ``dpo`` stages name the experts: ``<run>/train/w=1.00,0.00`` and ``w=0.00,1.00``."""
    from peft import LoraConfig, get_peft_model

    from moalign.models.load import load_causal_lm

    root = tmp_path_factory.mktemp("run") / "train"
    paths = []
    for i, tag in enumerate(["w=1.00,0.00", "w=0.00,1.00"]):
        model = get_peft_model(load_causal_lm(tiny_lm_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        g = torch.Generator().manual_seed(7 + i)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data = torch.randn(param.shape, generator=g) * 0.5
        model.save_pretrained(root / tag)
        paths.append(str(root / tag))
    return paths


class Killed(RuntimeError):
    """What :class:`TrainerHooks.kill_after` raises: a training stopped as a SIGKILL would stop it."""


class TrainerHooks:
    """Callbacks slipped into every trainer that ``module.builder`` builds during a test (the SFT or the
    preference trainer)."""

    Killed = Killed

    def __init__(self, monkeypatch, module: str, builder: str):
        self.monkeypatch, self.module, self.builder = monkeypatch, module, builder

    def add(self, callback) -> None:
        import importlib

        module = importlib.import_module(self.module)
        real = getattr(module, self.builder)

        def build(*args, **kwargs):
            trainer = real(*args, **kwargs)
            trainer.add_callback(callback)
            return trainer

        self.monkeypatch.setattr(module, self.builder, build)

    def kill_after(self, step: int) -> list[str]:
        """The first trainer raises :class:`Killed` right after writing checkpoint ``step``; the returned list
        then holds its checkpoint folder."""
        from transformers import TrainerCallback

        fired: list[str] = []

        class Kill(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                if state.global_step == step and not fired:
                    fired.append(args.output_dir)
                    raise Killed(f"killed after step {step}")

        self.add(Kill())
        return fired

    def record_steps(self) -> dict[str, list[int]]:
        """From now on, the global steps each trainer runs, keyed by its checkpoint folder."""
        from transformers import TrainerCallback

        steps: dict[str, list[int]] = {}

        class Record(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                steps.setdefault(args.output_dir, []).append(state.global_step)

        self.add(Record())
        return steps

    def clear(self) -> None:
        self.monkeypatch.undo()


@pytest.fixture
def sft_hooks(monkeypatch):
    return TrainerHooks(monkeypatch, "moalign.train.sft", "build_sft_trainer")


@pytest.fixture
def preference_hooks(monkeypatch):
    return TrainerHooks(monkeypatch, "moalign.train.preference_run", "build_preference_trainer")


@pytest.fixture
def response_hooks(monkeypatch):
    return TrainerHooks(monkeypatch, "moalign.train.preference_run", "build_response_trainer")
