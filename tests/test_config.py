from dataclasses import dataclass, field

import pytest

from moalign.config import (
    ConfigError,
    RunConfig,
    TrainSettings,
    apply_overrides,
    from_dict,
    load_run_config,
    save_config,
    to_dict,
)


@dataclass
class _Method:
    k: int = 100
    beta: float = 0.1
    train: TrainSettings = field(default_factory=TrainSettings)


def test_yaml_and_overrides_fill_typed_dataclasses(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: runs/x\ntask:\n  objectives: [a, b]\nmethod:\n  k: 5\n  train:\n    learning_rate: 5e-7\n")
    config = load_run_config(path, ["method.beta=0.5", "seed=3", "method.train.lora.r=8"], method_cls=_Method)
    assert config.run_dir == "runs/x" and config.seed == 3
    assert config.task.objectives == ["a", "b"]
    assert config.method.k == 5 and config.method.beta == 0.5
    assert config.method.train.learning_rate == pytest.approx(5e-7)  # YAML reads 5e-7 as a string
    assert config.method.train.lora.r == 8


def test_unknown_key_suggests_the_close_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("taks:\n  objectives: [a]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'taks'; did you mean 'task'\?"):
        load_run_config(path)
    with pytest.raises(ConfigError, match=r"method.train: unknown key 'learning_rat'; did you mean 'learning_rate'"):
        load_run_config(None, ["method.train.learning_rat=1"], method_cls=_Method)


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"config: seed: expected int, got 'abc'"):
        from_dict(RunConfig, {"seed": "abc"})


def test_override_needs_equals_sign():
    with pytest.raises(ConfigError, match="key.subkey=value"):
        apply_overrides({}, ["seed"])


def test_overrides_do_not_mutate_input():
    data = {"task": {"name": "x"}}
    out = apply_overrides(data, ["task.name=y"])
    assert data == {"task": {"name": "x"}} and out["task"]["name"] == "y"


def test_saved_config_loads_back_identically(tmp_path):
    config = load_run_config(None, ["seed=7", "method.k=3"], method_cls=_Method)
    save_config(config, tmp_path / "config.yaml")
    again = load_run_config(tmp_path / "config.yaml", method_cls=_Method)
    assert to_dict(again) == to_dict(config)


def test_method_section_without_method_is_an_error():
    with pytest.raises(ConfigError, match="takes no method"):
        load_run_config(None, ["method.k=3"])


@dataclass
class _MethodWithOwnDefaults:
    train: TrainSettings = field(default_factory=lambda: TrainSettings(learning_rate=0.5, max_steps=7))


def test_partial_nested_section_keeps_the_fields_own_defaults():
    config = load_run_config(None, ["method.train.max_steps=3"], method_cls=_MethodWithOwnDefaults)
    assert config.method.train.max_steps == 3
    assert config.method.train.learning_rate == 0.5  # the method's default, not TrainSettings' 1e-4


# ---------------------------------------------------------------------------------------------------------
# names that become paths, files that are not UTF-8, sections that are not sections
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../X", "a/b", ".hidden", "", "..", "x..y", "-lead", "a b"])
def test_an_objective_name_that_is_not_a_safe_folder_name_is_refused(name):
    with pytest.raises(ConfigError, match=r"task.objectives: .* is not a safe name; .*no '/', no '..'"):
        load_run_config(None, [f"task.objectives=[positivity,{name!r}]", "task.rewards=[positivity,brevity]"])


def test_safe_objective_names_load_and_a_repeated_one_is_refused():
    config = load_run_config(None, ["task.objectives=[helpful,harm-less_2.0]"])
    assert config.task.objectives == ["helpful", "harm-less_2.0"]
    with pytest.raises(ConfigError, match=r"\['a'\] appear more than once"):
        load_run_config(None, ["task.objectives=[a,a]"])


def test_a_config_that_is_not_utf8_names_the_file_the_byte_and_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("run_dir: runs/x\ntask:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_run_config(path)
    assert str(caught.value) == (f"{path}: not UTF-8 text: byte 0xe9 at offset 33 (line 3) (invalid continuation "
                                 "byte); save the file as UTF-8")


@pytest.mark.parametrize("text, where", [("method: 5\n", "method"), ("task: [a, b]\n", "task"),
                                         ("method:\n  train: 3\n", "method.train")])
def test_a_value_where_a_section_belongs_is_refused(tmp_path, text, where):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"c.yaml: {where}: expected a section"):
        load_run_config(path, method_cls=_Method)


# ---------------------------------------------------------------------------------------------------------
# field ranges, checked when a section is built (before anything runs)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("method.train.per_device_train_batch_size=0", "method.train: per_device_train_batch_size=0: must be an integer >= 1"),
    ("method.train.learning_rate=-1e-4", "learning_rate=-0.0001: must be a number >= 0"),
    ("method.train.warmup_ratio=1.5", "warmup_ratio=1.5: must be a number >= 0 and <= 1"),
    ("method.train.lora.r=-1", "lora.r=-1: must be an integer >= 0; 0 is full fine-tuning"),
    ("method.train.lora.dropout=1.5", "lora.dropout=1.5: must be a number >= 0 and <= 1"),
    ("eval.generation.top_p=0", "top_p=0.0: must be a number > 0 and <= 1"),
    ("eval.generation.temperature=0", "temperature=0.0: must be a number > 0; or set do_sample=false"),
    ("eval.generation.max_new_tokens=0", "max_new_tokens=0: must be an integer >= 1"),
    ("model.dtype=float8", "model.dtype='float8' is not known: choose one of float32, bfloat16, float16"),
    ("task.num_test_prompts=0", "task.num_test_prompts=0: must be an integer >= 1"),
    ("task.objectives=[]", "task.objectives is empty"),
    ("eval.stats_samples=0", "eval.stats_samples=0: must be an integer >= 1"),
    ("seed=-1", "seed=-1: must be an integer >= 0"),
    ("run_dir=''", "run_dir='': give the folder"),
])
def test_a_value_out_of_range_is_refused_when_the_section_is_built(override, message):
    with pytest.raises(ConfigError) as caught:
        load_run_config(None, [override], method_cls=_Method)
    assert message in str(caught.value)


def test_greedy_decoding_takes_any_temperature():
    assert load_run_config(None, ["eval.generation.do_sample=false", "eval.generation.temperature=0"]).eval


@pytest.mark.parametrize("override, message", [
    ("method.num_layers=0", "method.num_layers=0: must be an integer >= 1"),
    ("method.k=0", "method.k=0: must be an integer >= 1"),
    ("method.k=1", "stage 2 takes k // 2 = 0 points"),
    ("method.min_hq_size=-1", "method.min_hq_size=-1: must be an integer >= 0"),
    ("method.stage2_k=0", "method.stage2_k=0: must be an integer >= 1; or null"),
    ("method.stage2_prompts=0", "method.stage2_prompts=0"),
    ("method.normalize=minmax", "method.normalize='minmax' is not known: choose one of zscore, none"),
    ("method.ideal_nadir=hqq", "did you mean 'hq'"),
    ("method.scores_from=reward", "did you mean 'rewards'"),
])
def test_paretohqd_fields_are_checked_when_the_config_loads(override, message):
    from moalign.methods.paretohqd.config import ParetoHqDConfig

    with pytest.raises(ConfigError) as caught:
        load_run_config(None, [override], method_cls=ParetoHqDConfig)
    assert message in str(caught.value)


# ---- any transformers.TrainingArguments field under a train section ----------------------------------------


def test_training_arguments_fields_pass_through_with_their_yaml_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method:\n  train:\n    optim: adamw_torch_fused\n    save_total_limit: 2\n    max_steps: 7\n")
    config = load_run_config(path, ["method.train.adam_beta2=0.95", "method.train.lr_scheduler_kwargs={power: 2}"],
                             method_cls=_Method)
    train = config.method.train
    assert train.max_steps == 7  # a typed field stays a field
    assert train.extra == {"optim": "adamw_torch_fused", "save_total_limit": 2, "adam_beta2": 0.95,
                           "lr_scheduler_kwargs": {"power": 2}}
    assert type(train.extra["save_total_limit"]) is int and type(train.extra["adam_beta2"]) is float


def test_training_arguments_fields_round_trip_through_the_saved_config(tmp_path):
    config = load_run_config(None, ["method.train.optim=sgd", "method.train.save_total_limit=1"], method_cls=_Method)
    save_config(config, tmp_path / "saved.yaml")
    assert "extra:" in (tmp_path / "saved.yaml").read_text()
    assert load_run_config(tmp_path / "saved.yaml", method_cls=_Method) == config


@pytest.mark.parametrize("override, suggestion", [
    ("method.train.optimm=sgd", "did you mean 'optim'?"),
    ("method.train.learning_rat=0.1", "did you mean 'learning_rate'?"),
    ("method.train.save_total_limt=2", "did you mean 'save_total_limit'?"),
])
def test_a_misspelt_train_key_suggests_a_moalign_or_training_arguments_field(override, suggestion):
    key = override.split("=")[0].split(".")[-1]
    with pytest.raises(ConfigError, match=f"method.train: unknown key '{key}'.*{suggestion}"):
        load_run_config(None, [override], method_cls=_Method)


@pytest.mark.parametrize("override, controlled_by", [
    ("method.train.output_dir=/tmp/x", "run_dir="),
    ("method.train.seed=3", "the run's seed"),
    ("method.train.remove_unused_columns=true", "always false"),
    ("method.train.use_cpu=true", "CUDA_VISIBLE_DEVICES"),
    ("method.train.resume_from_checkpoint=x", "rerun the command"),
])
def test_a_training_argument_that_moalign_sets_is_refused_naming_its_setting(override, controlled_by):
    key = override.split("=")[0].split(".")[-1]
    with pytest.raises(ConfigError, match=f"'{key}' is set by moalign") as err:
        load_run_config(None, [override], method_cls=_Method)
    assert controlled_by in str(err.value)


def test_extra_is_checked_when_built_in_python_and_warmup_is_given_once():
    with pytest.raises(ConfigError, match="'data_seed' is set by moalign"):
        TrainSettings(extra={"data_seed": 1})
    with pytest.raises(ConfigError, match="'max_steps' is a train setting of its own"):
        TrainSettings(extra={"max_steps": 1})
    with pytest.raises(ConfigError, match="give one of them"):
        TrainSettings(warmup_ratio=0.1, extra={"warmup_steps": 10})
    assert TrainSettings(extra={"warmup_steps": 10}).extra == {"warmup_steps": 10}


def test_an_override_value_yaml_cannot_read_is_a_config_error_with_the_quoting_fix():
    from moalign.config import ConfigError, apply_overrides

    with pytest.raises(ConfigError, match=r"override 'task.rewards=\[hf:x\?convention=chat\]': the value is not valid "
                                          r"YAML .*quote values"):
        apply_overrides({}, ["task.rewards=[hf:x?convention=chat]"])
    assert apply_overrides({}, ["task.rewards=['hf:x?convention=chat']"]) == {"task": {"rewards": ["hf:x?convention=chat"]}}
