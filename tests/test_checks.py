"""validate_run_config / check_model_source: everything that would fail after earlier stages, refused first.

Nothing here downloads: Hub ids are looked up in a fake local cache, and the online path is checked with a
stand-in for ``huggingface_hub.model_info``.
"""

from __future__ import annotations

import json

import huggingface_hub
import pytest
from huggingface_hub import constants

from moalign.checks import check_model_source, validate_run_config
from moalign.config import ConfigError, load_run_config
from moalign.methods.paretohqd.config import ParetoHqDConfig


def _model_folder(path, weights="model.safetensors"):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / weights).write_bytes(b"")
    return path


def _fake_cache(root, repo_id, files=("config.json",)):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<sha>/...}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    for name in files:
        (repo / "snapshots" / "abc123" / name).write_text("{}")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_embedded_a_model_folder_an_adapter_and_a_cached_hub_id_are_valid(tmp_path, offline):
    check_model_source("embedded")
    check_model_source(str(_model_folder(tmp_path / "m")))
    check_model_source(str(_model_folder(tmp_path / "sharded", "model-00001-of-00002.safetensors")))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "embedded"}))
    check_model_source(str(tmp_path / "adapter"))
    _fake_cache(offline, "org/cached")
    check_model_source("org/cached")


@pytest.mark.parametrize("make, name, message", [
    (lambda t: (t / "empty").mkdir(), "empty", "the folder has no config.json, so it is not a model folder"),
    (lambda t: (t / "f.bin").write_text("x"), "f.bin", "a file, not a model folder"),
    (lambda t: _model_folder(t / "pickled", "pytorch_model.bin"), "pickled", "no *.safetensors weights"),
    (None, "./missing", "no such folder"),
    (None, "a/b/c", "no such folder"),
    (None, "org/na me", "neither an existing folder nor a valid Hub id"),
    (None, "org/not-cached", "not in the local Hugging Face cache"),
])
def test_a_model_source_that_cannot_load_is_a_config_error_naming_the_key(tmp_path, offline, monkeypatch, make,
                                                                          name, message):
    monkeypatch.chdir(tmp_path)
    if make is not None:
        make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        check_model_source(name, key="model.name_or_path")
    text = str(caught.value)
    assert text.startswith(f"model.name_or_path={name!r}: ") and message in text and "\n" not in text
    assert "'embedded'" in text or "hf download" in text or "save_pretrained" in text  # the fix


def test_offline_names_the_cache_and_the_download_command(offline):
    _fake_cache(offline, "org/other-revision")
    with pytest.raises(ConfigError) as caught:
        check_model_source("org/other-revision", revision="v2")
    assert str(caught.value) == (f"model.name_or_path='org/other-revision': not in the local Hugging Face cache at "
                                 f"revision 'v2' ({offline}) and the Hub is off (HF_HUB_OFFLINE=1); download it once "
                                 "with network access (`hf download org/other-revision`), or give a local model folder")


def test_online_only_the_metadata_is_asked_for_and_an_unreachable_hub_is_a_config_error(offline, monkeypatch):
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    asked = []

    def model_info(name, revision=None, timeout=None):
        asked.append((name, revision, timeout))
        if name == "org/missing":
            raise RepositoryNotFoundError.__new__(RepositoryNotFoundError)
        if name == "org/far":
            raise OSError("Network is unreachable")

    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    check_model_source("org/exists")
    with pytest.raises(ConfigError, match="'org/missing': no such model on the Hub"):
        check_model_source("org/missing")
    with pytest.raises(ConfigError, match=r"'org/far': not in the local Hugging Face cache and the Hub cannot be "
                                          r"reached \(OSError\); check the network"):
        check_model_source("org/far")
    assert [a[0] for a in asked] == ["org/exists", "org/missing", "org/far"] and all(a[2] for a in asked)


@pytest.mark.parametrize("overrides, message", [
    (["model.name_or_path=nowhere/a/b"], "model.name_or_path='nowhere/a/b': no such folder"),
    (["task.rewards=[positivity]"], "task.rewards has 1 entries but task.objectives names 2"),
    (["task.rewards=[positivity,'hf:./no_rm?sign=-1']"], "task.rewards[1]='./no_rm': no such folder"),
    (["eval.grid=simplex:0"], "eval.grid='simplex:0': n must be a positive integer"),
    (["eval.grid=nonsense"], "eval.grid='nonsense': unknown preference grid"),
    (["eval.hv_reference=[0]"], "eval.hv_reference=[0.0]: give 2 numbers"),
    (["eval.judge=llm"], "eval.judge='llm': use 'reward'"),
    (["eval.judge=hf:./no_judge", "eval.win_rate=true"], "eval.judge='./no_judge': no such folder"),
    (["eval.prompts_file=nope.jsonl"], "eval.prompts_file='nope.jsonl': no such file or folder"),
    (["eval.normalization=stats.json"], "eval.normalization='stats.json': no such file or folder; check the path; "
                                        "or use 'auto' or 'none'"),
    (["method.grid=list:1,0"], "method.grid='list:1,0': the method's grid 'list:1,0' has no model for evaluation"),
    (["method.ideal=[1,2,3]"], "method.ideal=[1.0, 2.0, 3.0]: give 2 finite numbers"),
    (["method.ideal=[0,0]", "method.nadir=[1,-1]"], "method.ideal=[0.0, 0.0] must exceed method.nadir=[1.0, -1.0]"),
])
def test_validate_run_config_refuses_what_would_fail_after_earlier_stages(tmp_path, monkeypatch, offline,
                                                                         overrides, message):
    monkeypatch.chdir(tmp_path)
    config = load_run_config(None, overrides, method_cls=ParetoHqDConfig)
    with pytest.raises(ConfigError) as caught:
        validate_run_config(config)
    assert message in str(caught.value)
    assert not list(tmp_path.iterdir())  # nothing was created: no run directory, no download


def test_the_embedded_configs_pass_and_reward_objects_skip_the_task_rewards(offline):
    validate_run_config(load_run_config(None, method_cls=ParetoHqDConfig))
    config = load_run_config(None, ["task.rewards=[one]"])
    validate_run_config(config, task_rewards=False)
    with pytest.raises(ConfigError, match="task.rewards has 1 entries"):
        validate_run_config(config)


# ---- train sections: report_to backends and TrainingArguments values, before the first stage ---------------


def test_a_missing_report_to_backend_is_refused_before_any_stage_folder_is_written(tmp_path, monkeypatch):
    import moalign.checks as checks
    from moalign.methods.registry import method_config
    from moalign.methods.train_run import train_method

    looked_up = []
    monkeypatch.setattr(checks, "backend_installed", lambda backend: looked_up.append(backend) or False)
    run_dir = tmp_path / "run"
    config = method_config("paretohqd", None, [f"run_dir={run_dir}", "method.stage2_train.report_to=tensorboard"])
    with pytest.raises(ConfigError, match=r"method.stage2_train.report_to='tensorboard': the tensorboard package is "
                                          r"not installed; install it with `pip install tensorboard`"):
        train_method("paretohqd", config, evaluate=False)
    assert looked_up == ["tensorboard"]
    assert not run_dir.exists()


@pytest.mark.parametrize("override, message", [
    ("method.train.report_to=wandb", "the wandb package is not installed; install it with `pip install wandb`"),
    ("method.train.report_to=tensorbord", "report_to='tensorbord' is not known.*did you mean 'tensorboard'"),
    ("method.train.optim=adamw_typo", "TrainingArguments refuses these settings: adamw_typo is not a valid"),
    ("method.train.lr_scheduler_type=cosin", "TrainingArguments refuses these settings: cosin is not a valid"),
])
def test_train_settings_that_would_fail_at_the_first_trainer_are_refused_first(override, message, monkeypatch):
    import moalign.checks as checks
    from moalign.methods.registry import method_config

    monkeypatch.setattr(checks, "backend_installed", lambda backend: backend != "wandb")
    with pytest.raises(ConfigError, match=message):
        validate_run_config(method_config("dpo", None, [override]))


def test_installed_backends_and_valid_training_arguments_pass(monkeypatch):
    import moalign.checks as checks
    from moalign.methods.registry import method_config

    monkeypatch.setattr(checks, "backend_installed", lambda backend: True)
    validate_run_config(method_config("dpo", None, ["method.train.report_to=tensorboard", "method.train.optim=sgd"]))
    sections = [key for key, _ in checks.train_sections(method_config("ric").method, "method")]
    assert sections == ["method.train", "method.online.train"]


def test_evaluation_on_the_training_file_is_refused_before_any_stage_folder_is_written(tmp_path):
    from moalign.methods.registry import method_config
    from moalign.methods.train_run import train_method

    data = tmp_path / "prefs.jsonl"
    data.write_text('{"prompt": "Q?", "chosen": " Yes.", "rejected": " No."}\n', encoding="utf-8")
    run_dir = tmp_path / "run"
    task = [f"task.train_data={data}", "task.source=trl", "task.name=mine", "task.objectives=[helpful,brief]",
            "task.rewards=[positivity,brevity]"]
    config = method_config("dpo", None, [f"run_dir={run_dir}", *task, "task.test_split=test"])
    with pytest.raises(ConfigError, match="would be the training data .*task.test_split=holdout:0.1"):
        train_method("dpo", config)
    assert not run_dir.exists()
