"""Whole-run checks, run before the first stage: rules that span fields, files the config names, and every model
it loads. A field's own range is checked where it is defined (``__post_init__`` of its dataclass, as in TRL and
transformers); what needs several sections, the file system or the Hugging Face cache is checked here, once,
by :func:`validate_run_config`, which ``moalign train`` and ``moalign eval`` call before they create the run
directory. Nothing is downloaded: a Hub id is looked up in the local cache, and only when the Hub is on is its
metadata asked for.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from moalign.config import ConfigError, EvalSettings, RunConfig, TrainSettings, check_choice
from moalign.hub import offline_mode, written_as_path


def validate_run_config(config: RunConfig, *, task_rewards: bool = True) -> None:
    """ConfigError for anything in ``config`` that would fail later: the rules that span fields (one value per
    objective), the files it names, and every model it loads (:func:`check_model_source`; nothing is
    downloaded). The method section checks its own fields in ``__post_init__`` and its cross-field rules in an
    optional ``check_run(run_config)``. ``task_rewards=False`` when reward objects replace ``task.rewards``."""
    k = len(config.task.objectives)
    check_model_source(config.model.name_or_path, revision=config.model.revision)
    if task_rewards:
        if len(config.task.rewards) != k:
            raise ConfigError(f"task.rewards has {len(config.task.rewards)} entries but task.objectives names {k} "
                              f"({config.task.objectives}); give one reward spec per objective, in the same order")
        for i, spec in enumerate(config.task.rewards):
            base, _, query = str(spec).partition("?")
            if base.startswith("hf:") and base[3:]:
                check_model_source(base[3:], key=f"task.rewards[{i}]", revision=dict(parse_qsl(query)).get("revision"))
    _check_eval(config.eval, k)
    from moalign.data.task import check_held_out

    check_held_out(config.task)  # the evaluation prompts are never silently the training prompts
    for key, settings in train_sections(config.method, "method"):
        check_train_settings(settings, key)
    check_run = getattr(config.method, "check_run", None)
    if callable(check_run):
        check_run(config)


def train_sections(section: Any, key: str) -> list[tuple[str, TrainSettings]]:
    """Every :class:`TrainSettings` inside a config section, with its dotted key (``method.stage2_train``)."""
    if isinstance(section, TrainSettings):
        return [(key, section)]
    if not dataclasses.is_dataclass(section) or isinstance(section, type):
        return []
    return [found for f in dataclasses.fields(section) for found in train_sections(getattr(section, f.name),
                                                                                   f"{key}.{f.name}")]


# report_to backend -> the pip package that provides it (where the names differ)
REPORT_PACKAGES = {"comet_ml": "comet-ml", "azure_ml": "azureml-core", "dagshub": "dagshub mlflow"}


def check_train_settings(settings: TrainSettings, key: str) -> None:
    """ConfigError now, not after the earlier stages: a ``report_to`` backend that is not installed or not
    known, and any value ``transformers.TrainingArguments`` refuses (``optim``, ``lr_scheduler_type``, ...)."""
    from transformers import TrainingArguments
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    from moalign.train.args import training_kwargs

    for backend in (b.strip() for b in str(settings.report_to).split(",")):
        if backend in ("none", "all", ""):
            continue
        check_choice(f"{key}.report_to", backend, ["none", "all", *INTEGRATION_TO_CALLBACK])
        if backend != "flyte" and not backend_installed(backend):  # flyte's callback needs no package of its own
            package = REPORT_PACKAGES.get(backend, backend)
            raise ConfigError(f"{key}.report_to={backend!r}: the {package} package is not installed; install it "
                              f"with `pip install {package}`, or set {key}.report_to=none")
    try:
        TrainingArguments(**training_kwargs(settings, "unused", 0))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{key}: transformers.TrainingArguments refuses these settings: {err}") from None


def backend_installed(backend: str) -> bool:
    """Whether transformers finds the package behind ``report_to`` backend ``backend`` (its own look-up)."""
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    return backend in get_available_reporting_integrations()


def _check_eval(settings: EvalSettings, k: int) -> None:
    from moalign.pareto import preference_grid

    try:
        preference_grid(settings.grid, k)
    except ValueError as err:
        raise ConfigError(f"eval.grid={settings.grid!r}: {err}") from None
    if settings.hv_reference is not None and len(settings.hv_reference) != k:
        raise ConfigError(f"eval.hv_reference={settings.hv_reference}: give {k} numbers, one per objective, or null")
    if settings.judge != "reward" and not (settings.judge.startswith("hf:") and settings.judge[3:]):
        raise ConfigError(f"eval.judge={settings.judge!r}: use 'reward' (the run's reward models) or "
                          "'hf:<judge model folder or Hub id>'")
    if settings.judge.startswith("hf:") and settings.win_rate:
        check_model_source(settings.judge[3:], key="eval.judge")
    files = {"eval.prompts_file": settings.prompts_file, "eval.reference_front": settings.reference_front,
             "eval.family": settings.family,
             "eval.normalization": None if settings.normalization in ("auto", "none") else settings.normalization}
    for key, value in files.items():
        if value is not None and not Path(value).exists():
            raise ConfigError(f"{key}={value!r}: no such file or folder; check the path"
                              + ("; or use 'auto' or 'none'" if key == "eval.normalization" else ""))


def check_model_source(name: str, *, key: str = "model.name_or_path", revision: str | None = None) -> None:
    """ConfigError unless ``name`` loads as a model: ``"embedded"``, a model folder (``config.json`` and
    safetensors weights, or a PEFT adapter), or a Hub id that is in the local cache, or else (when the Hub is
    on) known to the Hub. Nothing is downloaded; the Hub is asked for the model's metadata only."""
    if name == "embedded":
        return
    if os.path.lexists(name):
        _check_model_folder(Path(name), key)
    elif written_as_path(name):
        raise ConfigError(f"{key}={name!r}: no such folder; give a model folder ({MODEL_FOLDER}), a Hub id "
                          "(org/name) or 'embedded' (the built-in tiny model)")
    else:
        _check_hub_model(name, key, revision)


MODEL_FOLDER = "config.json and *.safetensors, as save_pretrained writes them"


def _check_model_folder(path: Path, key: str) -> None:
    where = f"{key}={str(path)!r}"
    if not path.is_dir():
        raise ConfigError(f"{where}: a file, not a model folder; give the folder that holds the model ({MODEL_FOLDER})")
    if (path / "adapter_config.json").is_file():
        return  # a PEFT adapter: its base model is named inside and loads with it
    if not (path / "config.json").is_file():
        raise ConfigError(f"{where}: the folder has no config.json, so it is not a model folder; give a model "
                          f"folder ({MODEL_FOLDER}), a Hub id (org/name) or 'embedded' (the built-in tiny model)")
    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").is_file():
        raise ConfigError(f"{where}: no *.safetensors weights in the folder (moalign loads safetensors only, since "
                          "unpickling .bin weights can run code); re-save it with save_pretrained(safe_serialization=True)")


def _check_hub_model(name: str, key: str, revision: str | None) -> None:
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except ValueError as err:
        raise ConfigError(f"{key}={name!r}: neither an existing folder nor a valid Hub id ({err}); give a model "
                          f"folder ({MODEL_FOLDER}), a Hub id (org/name) or 'embedded'") from None
    if isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str):
        return
    at = f" at revision {revision!r}" if revision else ""
    if offline_mode():
        raise ConfigError(f"{key}={name!r}: not in the local Hugging Face cache{at} ({constants.HF_HUB_CACHE}) and "
                          f"the Hub is off (HF_HUB_OFFLINE=1); download it once with network access "
                          f"(`hf download {name}`), or give a local model folder")
    _ask_hub(name, key, revision, at)


def _ask_hub(name: str, key: str, revision: str | None, at: str) -> None:
    """The Hub's metadata for ``name`` (no file is downloaded); ConfigError when it is missing or unreachable."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        model_info(name, revision=revision, timeout=15)
    except RevisionNotFoundError:
        raise ConfigError(f"{key}={name!r}: the Hub has no revision {revision!r} of it; check the revision") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"{key}={name!r}: no such model on the Hub (or it is private: log in with `hf auth "
                          "login`); check the id, or give a local model folder") from None
    except Exception as err:  # noqa: BLE001 - the network error types differ between huggingface_hub versions
        raise ConfigError(f"{key}={name!r}: not in the local Hugging Face cache{at} and the Hub cannot be reached "
                          f"({type(err).__name__}); check the network, or download it where there is one "
                          "(`hf download ...`) and run with HF_HUB_OFFLINE=1, or give a local model folder") from None
