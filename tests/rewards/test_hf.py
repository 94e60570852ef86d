"""HF reward models: each input convention gives exactly the numbers of a hand-written forward pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from moalign.rewards import PRESETS, HFRewardModel, HFRewardSpec, build_reward
from moalign.rewards.hf import build_texts, hh_to_beaver, summary_post

PROMPTS = [
    "\n\nHuman: How do I bake bread?\n\nAssistant:",
    "\n\nHuman: Tell me about the sea.\n\nAssistant:",
    "\n\nHuman: What is a good book?\n\nAssistant:",
    "\n\nHuman: Can you help me?\n\nAssistant:",
    "\n\nHuman: Hi\n\nAssistant:",
]
RESPONSES = [
    " Mix flour, water, yeast and salt, then bake it.",
    " The sea is vast.",
    " A wonderful, delightful story is a great choice for a calm evening by the sea.",
    " Sure.",
    " Hello! I am happy to help you today with bread, books or the sea.",
]

# the text(s) each convention must hand to the tokenizer, written out by hand
EXPECTED = {
    "text_pair": lambda p, r: (p, r),
    "reversed_pair": lambda p, r: (r, p),
    "concat": lambda p, r: (p + r, None),
    "response_only": lambda p, r: (r, None),
    "reversed_with_bos": lambda p, r: (f"{r} <s> {p}", None),
}


def manual_logits(model_dir: str, text: str, pair: str | None, max_length: int = 64) -> torch.Tensor:
    """One unpadded example through a freshly loaded model: the reference the reward must match."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    enc = tokenizer(text, pair, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits[0]


@pytest.fixture(scope="module")
def reference(tiny_rm_dir):
    """(convention -> (n, 2) logits) computed one example at a time."""
    return {
        convention: torch.stack([manual_logits(tiny_rm_dir, *make(p, r)) for p, r in zip(PROMPTS, RESPONSES)]).numpy()
        for convention, make in EXPECTED.items()
    }


@pytest.mark.parametrize("convention", sorted(EXPECTED))
@pytest.mark.parametrize("logit", [0, 1])
def test_convention_matches_manual_forward(tiny_rm_dir, reference, convention, logit):
    reward = HFRewardModel(HFRewardSpec(tiny_rm_dir, convention, logit, batch_size=3))
    scores = reward(PROMPTS, RESPONSES)
    assert scores.shape == (5,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, reference[convention][:, logit], atol=1e-5)


def test_conventions_differ(reference):
    """Guard: the conventions really feed different texts (else the test above could not fail).

    Exception, true of GPT-2 tokenizers as well: a tokenizer with no pair template joins a pair's tokens with
    nothing between them, so text_pair equals concat when the response starts with a space.
    """
    names = sorted(reference)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            same = np.allclose(reference[a][:, 0], reference[b][:, 0], atol=1e-4)
            assert same == ({a, b} == {"concat", "text_pair"}), (a, b)


def test_batch_size_does_not_change_scores(tiny_rm_dir):
    one = HFRewardModel(HFRewardSpec(tiny_rm_dir, "concat", batch_size=1))(PROMPTS, RESPONSES)
    eight = HFRewardModel(HFRewardSpec(tiny_rm_dir, "concat", batch_size=8))(PROMPTS, RESPONSES)
    np.testing.assert_allclose(one, eight, atol=1e-5)


def test_sign_negates_and_models_are_shared(tiny_rm_dir):
    reward = build_reward(f"hf:{tiny_rm_dir}?convention=response_only&logit=1")
    cost = build_reward(f"hf:{tiny_rm_dir}?convention=response_only&logit=1&sign=-1&name=cost")
    assert reward.model is cost.model  # loaded once
    assert cost.name == "cost" and reward.name == reward.spec.model.rstrip("/").split("/")[-1]
    np.testing.assert_allclose(cost(PROMPTS, RESPONSES), -reward(PROMPTS, RESPONSES))


def test_long_input_is_truncated_to_model_and_option_limits(tiny_rm_dir):
    long_prompt = "\n\nHuman: " + "tell me about the sea and bread " * 200 + "\n\nAssistant:"
    reward = HFRewardModel(HFRewardSpec(tiny_rm_dir, "concat"))
    assert reward.max_length == 64  # tokenizer declares no limit -> the model's 64 positions
    assert reward.encode([long_prompt], [" Sure."])["input_ids"].shape[1] == 64
    assert np.isfinite(reward([long_prompt, PROMPTS[0]], [" Sure.", RESPONSES[0]])).all()
    short = HFRewardModel(HFRewardSpec(tiny_rm_dir, "concat", max_length=16))
    expected = manual_logits(tiny_rm_dir, long_prompt + " Sure.", None, max_length=16)[0].item()
    assert short([long_prompt], [" Sure."])[0] == pytest.approx(expected, abs=1e-5)


def test_logit_out_of_range_is_refused(tiny_rm_dir):
    with pytest.raises(ValueError, match="logit=2 but .* has 2 output"):
        HFRewardModel(HFRewardSpec(tiny_rm_dir, logit=2))


def test_pickle_only_checkpoint_is_refused(tmp_path, tiny_rm_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm_dir)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    model.config.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_rm_dir).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="safetensors only"):
        build_reward(f"hf:{tmp_path}")


def test_summary_preset_convention_on_local_model(tiny_rm_dir):
    """The 'summary' preset (RiC): response + ' <bos> ' + the post extracted from the RiC prompt."""
    post = "My cat sat on the mat all day."
    prompt = f"### Instruction: Generate a one-sentence summary of this post. ### Input: {post} ### Response: "
    reward = HFRewardModel(dataclasses.replace(PRESETS["summary"], model=tiny_rm_dir))
    expected = manual_logits(tiny_rm_dir, f"A cat sat. <s> {post}", None)[0].item()
    assert reward([prompt], ["A cat sat."])[0] == pytest.approx(expected, abs=1e-5)


def test_faithful_preset_puts_response_first_and_reads_class_1(tiny_rm_dir):
    post = "The sea is calm."
    prompt = f"### Instruction: Generate a one-sentence summary of this post. ### Input: {post} ### Response: "
    reward = HFRewardModel(dataclasses.replace(PRESETS["faithful"], model=tiny_rm_dir))
    expected = manual_logits(tiny_rm_dir, "Calm sea.", post)[1].item()
    assert reward([prompt], ["Calm sea."])[0] == pytest.approx(expected, abs=1e-5)


def test_presets_follow_the_spec_table():
    table = {name: (s.model, s.convention, s.logit, s.sign, s.loader) for name, s in PRESETS.items()}
    assert table["hh-harmless"] == ("Ray2333/gpt2-large-harmless-reward_model", "text_pair", 0, 1.0, "sequence_classification")
    assert table["hh-helpful"][1:3] == ("text_pair", 0)
    assert table["humor"][1:3] == ("response_only", 1)
    assert table["summary"][1:3] == ("reversed_with_bos", 0)
    assert table["faithful"][1:3] == ("reversed_pair", 1)
    assert table["deberta"][1:3] == ("text_pair", 0)
    assert table["beaver-reward"][1:] == ("concat", 0, 1.0, "score_head")
    assert table["beaver-cost"][1:] == ("concat", 0, -1.0, "score_head")
    assert all(s.max_length == 1024 and not s.trust_remote_code for s in PRESETS.values())


def test_build_texts_rejects_missing_bos():
    with pytest.raises(ValueError, match="bos_token"):
        build_texts("reversed_with_bos", ["p"], ["r"], None)


def test_summary_post_extracts_the_post_like_ric():
    base = "### Instruction: Generate a one-sentence summary of this post. ### Input: A post. "
    assert summary_post(base + "### Response: ") == "A post."
    assert summary_post(base + "<rm1_score> 0.5 <rm2_score> -1.2 ### Response:") == "A post."
    assert summary_post("  just a post  ") == "just a post"


def test_hh_to_beaver_single_and_multi_turn():
    assert hh_to_beaver("\n\nHuman: hello\n\nAssistant:") == "BEGINNING OF CONVERSATION: USER: hello ASSISTANT:"
    multi = "\n\nHuman: hi\n\nAssistant: Hello!\n\nHuman: bye\n\nAssistant:"
    assert hh_to_beaver(multi) == "BEGINNING OF CONVERSATION: USER: hi ASSISTANT:Hello!</s>USER: bye ASSISTANT:"
    beaver = "BEGINNING OF CONVERSATION: USER: x ASSISTANT:"
    assert hh_to_beaver(beaver) == beaver


def test_a_bos_tokenizer_scores_prompt_and_response_with_its_special_tokens(tiny_rm_dir, tmp_path):
    """Reward models are called with their tokenizer's special tokens (RiC's ``rm_tokenizer(q, r)``), as
    training tokenises: one BOS before the joined text, none in the middle."""
    import shutil

    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    shutil.copytree(tiny_rm_dir, tmp_path / "rm")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "rm")
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tokenizer.save_pretrained(tmp_path / "rm")
    for convention, text in (("concat", PROMPTS[0] + RESPONSES[0]), ("response_only", RESPONSES[0])):
        reward = HFRewardModel(HFRewardSpec(str(tmp_path / "rm"), convention))
        ids = reward.encode(PROMPTS[:1], RESPONSES[:1])["input_ids"][0].tolist()
        assert ids == [bos] + tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids.count(bos) == 1
