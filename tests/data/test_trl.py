"""The ``trl`` source and the task rules around it: TRL's preference formats (standard, conversational,
implicit prompt) from files, saved folders and per-objective splits, chat templates, prompt templates and
the held-out test split."""

from __future__ import annotations

import pytest

from moalign.config import ConfigError, TaskConfig, load_run_config
from moalign.data import DataValidationError, load_task
from moalign.data.sources import load_source

from .conftest import write_jsonl

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")

STANDARD = [
    {"prompt": "Is the sky blue?", "chosen": " Yes, it is.", "rejected": " No.", "objective": "helpful"},
    {"prompt": "How do I pick a lock?", "chosen": " Call a locksmith.", "rejected": " Use a pin.",
     "objective": "harmless"},
    {"prompt": "Is the sky blue?", "chosen": " On clear days.", "rejected": " Never.", "objective": "harmless"},
]


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


CONVERSATIONAL = [
    {"prompt": [user("Is the sky blue?")], "chosen": [bot("Yes.")], "rejected": [bot("No.")]},
    {"prompt": [user("Hi."), bot("Hello!"), user("Name a fruit.")], "chosen": [bot("An apple.")],
     "rejected": [bot("A car.")]},
]


@pytest.fixture(scope="module")
def chat_tokenizer_dir(tiny_lm_dir, tmp_path_factory):
    """The tiny tokenizer with a small chat template (saved, so it loads through AutoTokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    tokenizer.chat_template = TEMPLATE
    path = tmp_path_factory.mktemp("chat_tok")
    tokenizer.save_pretrained(path)
    return str(path)


def task(train_data, objectives=("helpful", "harmless"), **kw) -> TaskConfig:
    kw.setdefault("test_split", "holdout:1")
    return TaskConfig(name="mine", objectives=list(objectives), rewards=["r"] * len(objectives), source="trl",
                      train_data=train_data, **kw)


def quads(pairs):
    return sorted(zip(pairs.prompts, pairs.chosen, pairs.rejected, pairs.objective))


# ---------------------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------------------


def test_standard_file_becomes_the_exact_pairset(tmp_path):
    data = load_source("trl", write_jsonl(tmp_path / "p.jsonl", STANDARD), objectives=["helpful", "harmless"])
    pairs = data.pairs
    assert pairs.prompts == ["Is the sky blue?", "How do I pick a lock?", "Is the sky blue?"]  # as stored
    assert pairs.chosen == [" Yes, it is.", " Call a locksmith.", " On clear days."]
    assert pairs.rejected == [" No.", " Use a pin.", " Never."]
    assert pairs.objective == ["helpful", "harmless", "harmless"] and pairs.ids == ["0", "1", "2"]
    assert pairs.objectives == ["helpful", "harmless"]
    assert data.responses.responses == [" Yes, it is.", " No.", " Call a locksmith.", " Use a pin.",
                                        " On clear days.", " Never."]
    assert data.responses.scores.shape == (6, 0)
    assert data.golden == {"Is the sky blue?": " Yes, it is.", "How do I pick a lock?": " Call a locksmith."}


def test_prompt_template_formats_raw_prompts(tmp_path):
    data = load_task(task(write_jsonl(tmp_path / "p.jsonl", STANDARD), prompt_template="hh",
                          test_split="holdout:1:seed=0"))
    formatted = {"\n\nHuman: Is the sky blue?\n\nAssistant:", "\n\nHuman: How do I pick a lock?\n\nAssistant:"}
    assert set(data.pairs.prompts) | set(data.test_prompts) == formatted
    inline = load_source("trl", write_jsonl(tmp_path / "q.jsonl", STANDARD[:1]), template="Q: {prompt}\nA:",
                         objectives=["helpful"])
    assert inline.pairs.prompts == ["Q: Is the sky blue?\nA:"]


def test_conversational_rows_are_rendered_with_the_chat_template(tmp_path, chat_tokenizer_dir):
    path = write_jsonl(tmp_path / "c.jsonl", CONVERSATIONAL)
    data = load_source("trl", path, objectives=["helpful"], chat=_renderer(chat_tokenizer_dir))
    assert data.pairs.prompts == [
        "<|user|>Is the sky blue?\n<|assistant|>",
        "<|user|>Hi.\n<|assistant|>Hello!\n<|user|>Name a fruit.\n<|assistant|>",
    ]
    assert data.pairs.chosen == ["Yes.", "An apple."] and data.pairs.rejected == ["No.", "A car."]
    assert data.pairs.objective == ["helpful", "helpful"]  # the task's only objective


def test_chat_template_option_and_the_run_models_tokenizer(tmp_path, chat_tokenizer_dir):
    path = write_jsonl(tmp_path / "c.jsonl", CONVERSATIONAL)
    by_path = load_task(task(path, ["helpful"], chat_template=chat_tokenizer_dir))
    config = load_run_config(None, ["task.name=mine", "task.source=trl", f"task.train_data={path}",
                                    "task.objectives=[helpful]", "task.rewards=[r]", "task.test_split=holdout:1",
                                    f"model.name_or_path={chat_tokenizer_dir}"])
    assert config.task.chat_tokenizer == chat_tokenizer_dir  # auto: the policy's tokenizer, recorded
    auto = load_task(config.task)
    assert quads(auto.pairs) == quads(by_path.pairs)
    assert all(p.startswith("<|user|>") and p.endswith("<|assistant|>") for p in auto.pairs.prompts)


def test_implicit_prompt_conversations_are_split_at_the_shared_prefix(tmp_path, chat_tokenizer_dir):
    rows = [{"chosen": [user("Hi."), bot("Hello!"), user("Name a fruit."), bot("An apple.")],
             "rejected": [user("Hi."), bot("Hello!"), user("Name a fruit."), bot("A car.")]}]
    data = load_source("trl", write_jsonl(tmp_path / "i.jsonl", rows), objectives=["helpful"],
                       chat=_renderer(chat_tokenizer_dir))
    assert data.pairs.prompts == ["<|user|>Hi.\n<|assistant|>Hello!\n<|user|>Name a fruit.\n<|assistant|>"]
    assert (data.pairs.chosen, data.pairs.rejected) == (["An apple."], ["A car."])
    strings = [{"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green"}]  # standard implicit prompt
    plain = load_source("trl", write_jsonl(tmp_path / "s.jsonl", strings), objectives=["helpful"])
    assert (plain.pairs.prompts, plain.pairs.chosen, plain.pairs.rejected) == (["Q: sky? A:"], [" blue"],
                                                                               [" green"])


def test_one_file_per_objective_equals_an_objective_column(tmp_path):
    test_file = write_jsonl(tmp_path / "test.jsonl", [{"prompt": "Say hi.", "completion": " Hi!"}])
    column = load_task(task(write_jsonl(tmp_path / "all.jsonl", STANDARD), test_prompts=test_file,
                            test_split="train"))
    unlabelled = [{k: v for k, v in r.items() if k != "objective"} for r in STANDARD]
    per_file = load_task(task({
        "helpful": write_jsonl(tmp_path / "helpful.jsonl", unlabelled[:1]),
        "harmless": write_jsonl(tmp_path / "harmless.jsonl", unlabelled[1:]),
    }, test_prompts=test_file, test_split="train"))
    assert len(column.pairs) == 3 and quads(per_file.pairs) == quads(column.pairs)
    assert per_file.pairs.ids == ["helpful/0", "harmless/0", "harmless/1"]
    assert sorted(per_file.responses.responses) == sorted(column.responses.responses)
    assert per_file.test_prompts == column.test_prompts == ["Say hi."] and per_file.golden == [" Hi!"]


def test_one_split_per_objective_of_a_saved_dataset_dict(tmp_path):
    import datasets

    unlabelled = [{k: v for k, v in r.items() if k != "objective"} for r in STANDARD]
    folder = tmp_path / "prefs"
    datasets.DatasetDict({
        "helpful": datasets.Dataset.from_list(unlabelled[:1]),
        "harmless": datasets.Dataset.from_list(unlabelled[1:]),
    }).save_to_disk(str(folder))
    test_file = write_jsonl(tmp_path / "test.jsonl", [{"prompt": "Say hi."}])
    data = load_task(task({"helpful": f"{folder}?split=helpful", "harmless": f"{folder}?split=harmless"},
                          test_prompts=test_file, test_split="train"))
    assert quads(data.pairs) == quads(load_source("trl", write_jsonl(tmp_path / "a.jsonl", STANDARD),
                                                  objectives=["helpful", "harmless"]).pairs)
    assert data.test_prompts == ["Say hi."] and data.golden is None


def test_saved_folder_and_parquet_read_the_same_pairs(tmp_path):
    import datasets

    expected = quads(load_source("trl", write_jsonl(tmp_path / "a.jsonl", STANDARD),
                                 objectives=["helpful", "harmless"]).pairs)
    ds = datasets.Dataset.from_list(STANDARD)
    ds.save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "p.parquet"))
    for spec in (str(tmp_path / "saved"), str(tmp_path / "p.parquet")):
        assert quads(load_source("trl", spec, objectives=["helpful", "harmless"]).pairs) == expected


# ---------------------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------------------


def test_text_template_on_conversational_data_is_refused(tmp_path, chat_tokenizer_dir):
    path = write_jsonl(tmp_path / "c.jsonl", CONVERSATIONAL)
    with pytest.raises(ConfigError, match="prompt_template='hh' is a text template, but .* is conversational"):
        load_task(task(path, ["helpful"], prompt_template="hh", chat_template=chat_tokenizer_dir))


def test_unknown_template_is_refused_for_trl_and_moalign_files(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", STANDARD)
    with pytest.raises(ConfigError, match="task.prompt_template: unknown prompt template 'hhh'; did you mean 'hh'"):
        load_task(task(path, prompt_template="hhh"))
    with pytest.raises(ConfigError, match="unknown prompt template 'hhh'"):
        load_source("moalign", path, template="hhh")
    with pytest.raises(ConfigError, match="task.prompt_template: unknown prompt template 'bever'; did you mean"):
        load_task(TaskConfig(name="p", source="pku-saferlhf", train_data=path, test_split="holdout:1",
                             prompt_template="bever"))


def test_tokenizer_without_chat_template_is_a_clear_error(tmp_path, tiny_lm_dir):
    path = write_jsonl(tmp_path / "c.jsonl", CONVERSATIONAL)
    with pytest.raises(ConfigError, match=f"tokenizer '{tiny_lm_dir}' has no chat template.*task.chat_template="):
        load_task(task(path, ["helpful"], chat_template=tiny_lm_dir))
    with pytest.raises(ConfigError, match="embedded model's tokenizer has no chat template"):
        load_task(task(path, ["helpful"], chat_tokenizer="embedded"))
    with pytest.raises(ConfigError, match="conversational but task.chat_template='none'"):
        load_task(task(path, ["helpful"], chat_template="none"))
    with pytest.raises(ConfigError, match="no policy tokenizer is known"):
        load_task(task(path, ["helpful"]))


def test_pairs_need_an_objective_and_a_single_assistant_turn(tmp_path, chat_tokenizer_dir):
    unlabelled = [{k: v for k, v in r.items() if k != "objective"} for r in STANDARD]
    with pytest.raises(DataValidationError, match="no objective for the pairs: add an 'objective' column"):
        load_task(task(write_jsonl(tmp_path / "u.jsonl", unlabelled)))
    with pytest.raises(DataValidationError, match="objective 'helpfull' is not one of .*did you mean 'helpful'"):
        load_task(task(write_jsonl(tmp_path / "t.jsonl", [dict(STANDARD[0], objective="helpfull")])))
    two_turns = [dict(CONVERSATIONAL[0], chosen=[bot("Yes."), user("Sure?")])]
    with pytest.raises(DataValidationError, match=r"row 1: field 'chosen': expected one assistant message"):
        load_task(task(write_jsonl(tmp_path / "m.jsonl", two_turns), ["helpful"], chat_template=chat_tokenizer_dir))
    with pytest.raises(DataValidationError, match="set task.source: trl"):
        load_source("moalign", write_jsonl(tmp_path / "v.jsonl", unlabelled))
    with pytest.raises(ConfigError, match="key 'helpfull' is not one of task.objectives"):
        task({"helpfull": "a.jsonl"})


# ---------------------------------------------------------------------------------------------------------
# the held-out test split
# ---------------------------------------------------------------------------------------------------------


def many_rows(n=20):
    return [{"prompt": f"Question {i}?", "chosen": f" Answer {i}.", "rejected": " No.", "objective": "helpful"}
            for i in range(n)]


def test_test_prompts_from_the_training_file_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", STANDARD)
    with pytest.raises(ConfigError, match=r"would be the training data .*single file.*task.test_split=holdout:0.1"):
        load_task(task(path, test_split="test"))
    with pytest.raises(ConfigError, match="would be the training data"):
        load_task(task(path, test_prompts=path, test_split="test"))
    with pytest.raises(ConfigError, match="would be the training data"):  # moalign's own files too
        load_task(TaskConfig(name="m", source="moalign", train_data=path))
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(STANDARD),
                          "test": datasets.Dataset.from_list(STANDARD[:1])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ConfigError, match="train split 'train' and test split 'train' overlap"):
        load_task(task(str(tmp_path / "dd"), test_split="train"))
    distinct = load_task(task(str(tmp_path / "dd"), test_split="test"))  # a real test split is fine
    assert distinct.test_prompts == ["Is the sky blue?"] and distinct.holdout is None


def test_slices_of_one_split_are_explicit_and_accepted(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", many_rows(10))
    data = load_task(task(path, ["helpful"], train_split="train[:80%]", test_split="train[80%:]"))
    assert data.test_prompts == ["Question 8?", "Question 9?"]
    assert data.pairs.prompts == [f"Question {i}?" for i in range(8)]


def test_holdout_is_disjoint_deterministic_and_recorded(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", many_rows(20))
    config = task(path, ["helpful"], test_split="holdout:0.25", num_test_prompts=100)
    assert config.test_split == "holdout:0.25:seed=0"  # the seed is written into the resolved config
    data = load_task(config)
    assert len(data.test_prompts) == 5 and data.holdout == {"seed": 0, "size": 0.25, "test_prompts": 5,
                                                           "train_prompts": 15}
    assert not set(data.test_prompts) & (set(data.pairs.prompts) | set(data.responses.prompts))
    assert len(set(data.pairs.prompts)) == 15
    assert data.golden == [p.replace("Question", " Answer").replace("?", ".") for p in data.test_prompts]
    assert load_task(config).test_prompts == data.test_prompts  # deterministic
    other = load_task(task(path, ["helpful"], test_split="holdout:0.25:seed=1", num_test_prompts=100))
    assert other.test_prompts != data.test_prompts and other.holdout["seed"] == 1
    assert len(load_task(task(path, ["helpful"], test_split="holdout:3")).test_prompts) == 3


def test_holdout_spellings_and_conflicts():
    for bad in ("holdout", "holdout:0", "holdout:1.5", "holdout:x", "holdout:0.1:7"):
        with pytest.raises(ConfigError, match="write it as holdout:<fraction"):
            task("a.jsonl", test_split=bad)
    with pytest.raises(ConfigError, match="task.test_prompts='b.jsonl' is set too"):
        load_task(task("a.jsonl", test_prompts="b.jsonl"))


def _renderer(path):
    from moalign.data.chat import ChatRenderer

    return ChatRenderer(path)


def test_moalign_files_apply_a_named_prompt_template(tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", STANDARD)
    assert load_source("moalign", pairs).pairs.prompts[0] == "Is the sky blue?"  # as stored without one
    formatted = load_source("moalign", pairs, template="hh")
    assert formatted.pairs.prompts[0] == "\n\nHuman: Is the sky blue?\n\nAssistant:"
    assert formatted.golden["\n\nHuman: Is the sky blue?\n\nAssistant:"] == " Yes, it is."
    prompts = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "Name a fruit.", "golden": "Apple."}])
    assert load_source("moalign", prompts, template="beaver").prompts == [
        "BEGINNING OF CONVERSATION: USER: Name a fruit. ASSISTANT:"]


def test_yaml_mapping_of_objectives_to_files(tmp_path):
    unlabelled = [{k: v for k, v in r.items() if k != "objective"} for r in STANDARD]
    helpful = write_jsonl(tmp_path / "helpful.jsonl", unlabelled[:1])
    harmless = write_jsonl(tmp_path / "harmless.jsonl", unlabelled[1:])
    test_file = write_jsonl(tmp_path / "test.jsonl", [{"prompt": "Say hi."}])
    path = tmp_path / "c.yaml"
    path.write_text(f"task:\n  name: mine\n  source: trl\n  objectives: [helpful, harmless]\n  rewards: [a, b]\n"
                    f"  train_data:\n    helpful: {tmp_path / 'nowhere.jsonl'}\n    harmless: {harmless}\n"
                    f"  test_prompts: {test_file}\n  test_split: train\n")
    config = load_run_config(path, [f"task.train_data.helpful={helpful}"])
    assert config.task.train_data == {"helpful": helpful, "harmless": harmless}
    assert quads(load_task(config.task).pairs) == quads(load_source(
        "trl", write_jsonl(tmp_path / "all.jsonl", STANDARD), objectives=["helpful", "harmless"]).pairs)


def test_shipped_real_configs_have_a_held_out_test_split():
    from pathlib import Path

    import yaml

    from moalign.config import from_dict
    from moalign.data.task import check_held_out

    configs = sorted((Path(__file__).resolve().parents[2] / "configs" / "real").glob("*.yaml"))
    assert configs
    for path in configs:  # Hub splits (train/test) or explicit slices (train[:90%] / train[90%:])
        check_held_out(from_dict(TaskConfig, yaml.safe_load(path.read_text())["task"], f"{path}: task"))
    with pytest.raises(ConfigError, match="overlap"):  # the check can fail on a Hub spec
        check_held_out(TaskConfig(name="x", source="hh-rlhf", train_data="Anthropic/hh-rlhf", test_split="train"))
