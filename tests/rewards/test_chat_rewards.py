"""Reward models with their own chat template: the conversation a prompt was rendered from is rendered again
with the reward's tokenizer; and a TRL-format conversational file, a chat policy and a local reward-model
folder with a different template train and evaluate end to end through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from moalign.rewards.hf import HFRewardModel, HFRewardSpec, prompt_messages

POLICY_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                   "{% if add_generation_prompt %}<|assistant|>{% endif %}")
RM_TEMPLATE = "{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }} {% endfor %}"


def with_template(folder: str, template: str, out: Path) -> str:
    """A copy of a model folder whose tokenizer carries ``template``."""
    from transformers import AutoTokenizer

    shutil.copytree(folder, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def chat_rm_dir(tiny_rm_dir, tmp_path_factory):
    return with_template(tiny_rm_dir, RM_TEMPLATE, tmp_path_factory.mktemp("rm") / "rm")


def test_the_reward_renders_the_prompts_own_messages_with_its_template(chat_rm_dir):
    reward = HFRewardModel(HFRewardSpec(chat_rm_dir, convention="chat"),
                           conversations={"<|user|>Hi.\n<|assistant|>": [{"role": "user", "content": "Hi."}]})
    batch = reward.encode(["<|user|>Hi.\n<|assistant|>", "\n\nHuman: Bread?\n\nAssistant:", "plain words"],
                          ["Hello!", "Yes.", "Ok."])
    texts = reward.tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
    assert [t.strip() for t in texts] == ["[USER] Hi. [ASSISTANT] Hello!", "[USER] Bread? [ASSISTANT] Yes.",
                                          "[USER] plain words [ASSISTANT] Ok."]
    assert reward(["plain words"], ["Ok."]).shape == (1,)


def test_hh_prompts_become_turns_and_a_template_is_required(tiny_rm_dir):
    assert prompt_messages("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:") == [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    with pytest.raises(ValueError, match="convention=chat but the tokenizer of .* has no chat template"):
        HFRewardModel(HFRewardSpec(tiny_rm_dir, convention="chat"))


def test_trl_conversations_train_and_evaluate_through_the_cli(tmp_path, tiny_lm_dir, chat_rm_dir, monkeypatch):
    import moalign.rewards.hf as hf
    from moalign.cli import main
    from moalign.eval.harness import load_metrics

    policy = with_template(tiny_lm_dir, POLICY_TEMPLATE, tmp_path / "policy")
    rows = [{"prompt": [{"role": "user", "content": f"Question {i}?"}],
             "chosen": [{"role": "assistant", "content": f"A kind answer {i}."}],
             "rejected": [{"role": "assistant", "content": "No."}], "objective": ["helpful", "brief"][i % 2]}
            for i in range(12)]
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    seen = []
    real = hf.chat_texts
    monkeypatch.setattr(hf, "chat_texts", lambda *a, **k: seen.extend(real(*a, **k)) or real(*a, **k))
    args = ["train", "dpo", "configs/embedded/dpo.yaml", f"run_dir={tmp_path / 'run'}", f"model.name_or_path={policy}",
            "task.name=mine", "task.source=trl", f"task.train_data={data}", "task.test_split=holdout:3",
            "task.objectives=[helpful,brief]", f"task.rewards=['hf:{chat_rm_dir}?convention=chat',brevity]", "task.num_test_prompts=3",
            "method.train.max_steps=2", "method.train.per_device_train_batch_size=2", "method.train.max_length=48",
            "eval.grid=list:1,0;0,1", "eval.generation.max_new_tokens=4", "eval.stats_samples=8", "eval.progress=false",
            "eval.samples_per_point=0", "eval.include_degenerate=true"]
    assert main(args) == 0
    metrics = load_metrics(tmp_path / "run")["metrics"]
    assert metrics["n_points"]["value"] == 2
    prompts = [json.loads(line)["prompt"] for line in (tmp_path / "run" / "eval" / "prompts" / "prompts.jsonl")
               .read_text().splitlines()]
    assert len(prompts) == 3 and all(p.startswith("<|user|>Question ") and p.endswith("<|assistant|>") for p in prompts)
    # the reward saw each conversation in its own template, never the policy's
    assert seen and all(t.startswith("[USER] Question ") and "<|user|>" not in t for t in seen)
