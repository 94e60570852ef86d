"""Completion-only SFT on TRL: masking, determinism, LoRA / full, continuing from a saved stage, added tokens."""

import json

import pytest
import torch

from moalign.config import LoraSettings, TrainSettings
from moalign.models.load import load_policy, load_tokenizer
from moalign.train.sft import build_sft_trainer, completion_texts, sft_dataset, train_sft

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: Can you help me?\n\nAssistant:"] * 4
RESPONSES = ["Mix flour, water, yeast and salt, then bake it.", "Sure. I am happy to help you today."] * 4


def settings(steps=4, lr=1e-3, lora=0):
    return TrainSettings(
        max_steps=steps, learning_rate=lr, per_device_train_batch_size=4, logging_steps=100,
        lora=LoraSettings(r=lora, alpha=2.0 * lora),
    )


def test_completion_texts_and_dataset_errors():
    assert completion_texts(["hi", " there", "\nx"]) == [" hi", " there", "\nx"]
    assert completion_texts(["hi"], separator="") == ["hi"]
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        sft_dataset(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="row 1 is empty"):
        sft_dataset(["a", "b"], ["x", "  "])


def test_prompt_tokens_carry_no_loss(tiny_lm_dir, tmp_path):
    tok = load_tokenizer(tiny_lm_dir)
    trainer = build_sft_trainer(tiny_lm_dir, PROMPTS[:2], RESPONSES[:2], settings(), tmp_path, seed=0)
    row = trainer.train_dataset[0]
    prompt_ids = tok(PROMPTS[0], add_special_tokens=False)["input_ids"]
    full_ids = tok(PROMPTS[0] + " " + RESPONSES[0], add_special_tokens=False)["input_ids"]
    n_prompt = len(prompt_ids)
    assert row["input_ids"] == full_ids + [tok.eos_token_id]  # the EOS is appended and trained on
    assert row["labels"][:n_prompt] == [-100] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert tok.decode(row["input_ids"][n_prompt:], skip_special_tokens=True) == " " + RESPONSES[0]


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _response_nll(model, tok, prompt, response):
    ids = tok(prompt + " " + response, add_special_tokens=False, return_tensors="pt")["input_ids"]
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    labels = ids.clone()
    labels[:, :n] = -100
    with torch.no_grad():
        return model(input_ids=ids, labels=labels).loss.item()


def test_full_finetune_learns_and_is_deterministic(tiny_lm_dir, tmp_path):
    base, tok = load_policy(tiny_lm_dir)
    before = _response_nll(base, tok, PROMPTS[0], RESPONSES[0])
    a = train_sft(tiny_lm_dir, PROMPTS, RESPONSES, settings(steps=12, lr=3e-3), tmp_path / "a", seed=1)
    b = train_sft(tiny_lm_dir, PROMPTS, RESPONSES, settings(steps=12, lr=3e-3), tmp_path / "b", seed=1)
    model_a, _ = load_policy(a)
    model_b, _ = load_policy(b)
    wa, wb = _weights(model_a), _weights(model_b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _response_nll(model_a, tok, PROMPTS[0], RESPONSES[0]) < before - 0.5
    assert not (a / "training_args.bin").exists()


def test_lora_then_continue_from_the_saved_adapter(tiny_lm_dir, tmp_path):
    first = train_sft(tiny_lm_dir, PROMPTS, RESPONSES, settings(lora=4), tmp_path / "s1", seed=0)
    cfg = json.loads((first / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == tiny_lm_dir
    second = train_sft(first, PROMPTS, RESPONSES, settings(lora=4), tmp_path / "s2", seed=0)
    assert json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"] == tiny_lm_dir
    m1, _ = load_policy(first)
    m2, _ = load_policy(second)
    w1 = {k: v for k, v in _weights(m1).items() if "lora_" in k}
    w2 = {k: v for k, v in _weights(m2).items() if "lora_" in k}
    assert w1 and w1.keys() == w2.keys()
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)  # stage 2 moved the stage-1 adapter


def test_added_tokens_get_trainable_rows_under_lora(tiny_lm_dir, tmp_path):
    tok = load_tokenizer(tiny_lm_dir)
    old = len(tok)
    tok.add_tokens(["<rm1_score>", "<rm2_score>"])
    new_ids = tok.convert_tokens_to_ids(["<rm1_score>", "<rm2_score>"])
    assert new_ids == [old, old + 1]
    base, _ = load_policy(tiny_lm_dir)
    original = base.get_input_embeddings().weight.detach().clone()
    base.resize_token_embeddings(old + 2)
    with torch.no_grad():
        base.get_input_embeddings().weight[old:] = 0.0  # a known start for the new rows
    prompts = [p.replace("\n\nAssistant:", " <rm1_score> 1.0 <rm2_score> -1.0 \n\nAssistant:") for p in PROMPTS]
    out = train_sft(base, prompts, RESPONSES, settings(lora=4, lr=1e-2), tmp_path / "tok", seed=0, tokenizer=tok,
                    trainable_token_ids=new_ids)
    model, loaded_tok = load_policy(out)
    assert len(loaded_tok) == old + 2
    emb = model.merge_and_unload().get_input_embeddings().weight.detach()
    assert emb.shape[0] == old + 2
    torch.testing.assert_close(emb[:old], original)  # LoRA leaves the old vocabulary alone
    assert emb[old:].abs().sum() > 0  # the reward-token rows were trained


@pytest.mark.parametrize("lora", [0, 4])
def test_killed_sft_resumes_to_the_uninterrupted_weights(tiny_lm_dir, tmp_path, sft_hooks, lora):
    """Kill after the step-4 checkpoint, rerun: the run resumes there and ends bit-identical to one that ran
    straight through (optimizer, scheduler, RNG and data order all come back from the checkpoint)."""
    from moalign.train.checkpoints import COMPLETE_FILE

    run = settings(steps=8, lr=3e-3, lora=lora)
    run.save_steps = 4
    straight = train_sft(tiny_lm_dir, PROMPTS, RESPONSES, run, tmp_path / "straight", seed=3,
                         checkpoint_dir=tmp_path / "ck_straight")
    sft_hooks.kill_after(4)
    with pytest.raises(sft_hooks.Killed):
        train_sft(tiny_lm_dir, PROMPTS, RESPONSES, run, tmp_path / "resumed", seed=3, checkpoint_dir=tmp_path / "ck")
    assert (tmp_path / "ck" / "checkpoint-4" / COMPLETE_FILE).is_file()
    assert not (tmp_path / "resumed").exists()
    sft_hooks.clear()
    steps = sft_hooks.record_steps()
    resumed = train_sft(tiny_lm_dir, PROMPTS, RESPONSES, run, tmp_path / "resumed", seed=3, checkpoint_dir=tmp_path / "ck")
    assert steps == {str(tmp_path / "ck"): [5, 6, 7, 8]}  # resumed after the step-4 checkpoint
    wa, wb = _weights(load_policy(straight)[0]), _weights(load_policy(resumed)[0])
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_half_written_checkpoint_is_dropped_not_resumed(tiny_lm_dir, tmp_path):
    """A kill while the Trainer writes ``checkpoint-N`` leaves a folder without the completion stamp: the rerun
    deletes it and resumes from the last complete checkpoint (here: none, so from the start)."""
    from moalign.train.checkpoints import checkpoint_folders, is_complete

    half = tmp_path / "ck" / "checkpoint-6"
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")
    run = settings(steps=6, lr=3e-3)
    run.save_steps = 3
    out = train_sft(tiny_lm_dir, PROMPTS, RESPONSES, run, tmp_path / "out", seed=0, checkpoint_dir=tmp_path / "ck")
    assert (out / "model.safetensors").is_file()
    assert [p.name for p in checkpoint_folders(tmp_path / "ck")] == ["checkpoint-3", "checkpoint-6"]
    assert is_complete(tmp_path / "ck" / "checkpoint-6")  # rewritten by this run, not the half-written one
