"""Generation tokenises a prompt exactly as training starts the sequence (issue 12, item 13).

TRL's SFT (``moalign.train.sft``) and the preference collator (``moalign.train.collate``) call the tokenizer
with its special tokens, so a tokenizer that puts BOS before every text (Llama-2's) trains on ``<s> prompt
response``. Generation must then be given ``<s> prompt`` too; the old code tokenised prompts without special
tokens. The BOS tokenizer here is the shared tiny tokenizer with a Llama-2-style post-processor.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from moalign.config import LoraSettings, TrainSettings
from moalign.eval.generate import encode_prompts, generate, left_pad
from moalign.models.load import load_policy, load_tokenizer

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Hi\n\nAssistant:"]
RESPONSES = ["Mix flour, water, yeast and salt, then bake it.", "Hello! Happy to help."]


def _with_template(tiny_lm_dir, folder, single: str):
    """A copy of the tiny model folder whose tokenizer applies the post-processing template ``single``."""
    from tokenizers.processors import TemplateProcessing

    shutil.copytree(tiny_lm_dir, folder)
    tokenizer = load_tokenizer(str(folder))
    specials = [(t, tokenizer.convert_tokens_to_ids(t)) for t in ("<s>", "</s>") if t in single]
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(single=single, special_tokens=specials)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def bos_lm_dir(tiny_lm_dir, tmp_path_factory):
    """The tiny model with a tokenizer that adds BOS (``<s> $A``), as Llama-2's does."""
    return _with_template(tiny_lm_dir, tmp_path_factory.mktemp("bos") / "lm", "<s> $A")


class Recorder(torch.nn.Module):
    """A stand-in causal LM that records the tensors ``generate`` hands it and continues with one token."""

    def __init__(self, token: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.token, self.calls = token, []

    def generate(self, input_ids, attention_mask=None, **kwargs):
        self.calls.append((input_ids.clone(), attention_mask.clone()))
        return torch.cat([input_ids, torch.full((input_ids.shape[0], 1), self.token)], dim=1)


def _model_inputs(tokenizer, prompts) -> list[list[int]]:
    """The unpadded token ids the model receives for each prompt."""
    recorder = Recorder(tokenizer.eos_token_id)
    generate(recorder, tokenizer, prompts, max_new_tokens=1, stop_strings=[], batch_size=8)
    (ids, mask), = recorder.calls
    return [row[m.bool()].tolist() for row, m in zip(ids, mask)]


def test_generation_prompts_start_like_sft_and_preference_training(bos_lm_dir, tmp_path):
    from moalign.train.collate import tokenize_response
    from moalign.train.sft import build_sft_trainer

    tokenizer = load_tokenizer(bos_lm_dir)
    seen = _model_inputs(tokenizer, PROMPTS)
    plain = tokenizer(PROMPTS, add_special_tokens=False)["input_ids"]
    assert seen == [[tokenizer.bos_token_id] + ids for ids in plain]  # old code: no BOS

    settings = TrainSettings(max_steps=1, per_device_train_batch_size=2, max_length=96, lora=LoraSettings(r=0))
    trainer = build_sft_trainer(bos_lm_dir, PROMPTS, RESPONSES, settings, tmp_path, seed=0)
    for i, ids in enumerate(seen):
        sft = trainer.train_dataset[i]
        assert sft["input_ids"][: len(ids)] == ids  # SFT trains on exactly these prompt tokens ...
        assert sft["labels"][: len(ids)] == [-100] * len(ids) and sft["labels"][len(ids)] != -100  # ... then the response
        pref_ids, pref_labels = tokenize_response(tokenizer, PROMPTS[i], RESPONSES[i], max_length=96)
        assert pref_ids[: len(ids)] == ids and pref_labels[: len(ids)] == [-100] * len(ids)
        assert pref_labels[len(ids)] == pref_ids[len(ids)]


def test_an_eos_the_tokenizer_appends_does_not_end_the_prompt(tiny_lm_dir, tmp_path):
    tokenizer = load_tokenizer(_with_template(tiny_lm_dir, tmp_path / "lm", "<s> $A </s>"))
    plain = tokenizer(PROMPTS, add_special_tokens=False)["input_ids"]
    assert tokenizer(PROMPTS[0])["input_ids"][-1] == tokenizer.eos_token_id
    assert encode_prompts(tokenizer, PROMPTS) == [[tokenizer.bos_token_id] + ids for ids in plain]


def test_tokenizers_without_special_tokens_see_what_they_saw_before(tiny_lm_dir):
    tokenizer = load_tokenizer(tiny_lm_dir)  # the shared tiny tokenizer adds nothing around a text
    old = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    new = left_pad(encode_prompts(tokenizer, PROMPTS), tokenizer.pad_token_id)
    assert torch.equal(new["input_ids"], old["input_ids"]) and torch.equal(new["attention_mask"], old["attention_mask"])


def test_a_real_model_generates_from_bos_prompts_reproducibly(bos_lm_dir):
    model, tokenizer = load_policy(bos_lm_dir)
    run = lambda seed: generate(model, tokenizer, PROMPTS * 2, seed=seed, max_new_tokens=6, stop_strings=[])  # noqa: E731
    a = run(3)
    assert len(a) == 4 and all(isinstance(t, str) for t in a)
    assert a == run(3) and a != run(4)


def test_evaluation_moves_a_cpu_policy_to_the_gpu_in_the_runs_dtype(monkeypatch):
    """Families load on the CPU; with a GPU the harness decodes there, in model.dtype, and leaves a family
    that placed itself (MOD, soups) alone. (The move itself is stubbed: this machine has no GPU.)"""
    import torch

    from moalign.eval.sweep import on_accelerator

    calls = []

    class Stub(torch.nn.Linear):
        def to(self, *args, **kwargs):
            calls.append(kwargs)
            return self

    model = Stub(2, 2)
    on_accelerator(model, "bfloat16")
    assert calls == [] or torch.cuda.is_available()  # no GPU: nothing moves
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on_accelerator(model, "bfloat16")
    assert calls[-1] == {"device": "cuda", "dtype": torch.bfloat16}
    placed = Stub(2, 2, device="meta")  # already off the CPU: left where its family put it
    calls.clear()
    on_accelerator(placed, "bfloat16")
    assert calls == []
