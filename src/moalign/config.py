"""Typed configuration: dataclasses filled from YAML files and ``a.b=c`` command-line overrides.

Every run is described by one :class:`RunConfig`. Unknown keys fail loudly with a "did you mean" so that a
misspelt option never silently falls back to its default. The resolved config is written into the run
directory, so a run can always be reproduced from its folder alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or key is wrong; the message names the key, the source and the fix."""


DTYPE_NAMES = ("float32", "bfloat16", "float16")  # the keys of moalign.models.load.DTYPES

# objective names become folder and file names in the run directory (``margin/<objective>``, pair files)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_safe_name(value: Any, field: str) -> None:
    """ConfigError unless ``value`` is a name that is safe as one path part: letters, digits, ``_ - .``,
    starting with a letter or digit, never ``..`` (so no name can climb out of the run directory)."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{field}: {value!r} is not a safe name; it becomes a folder name in the run directory, so use only "
            "letters, digits, '_', '-' and '.' (starting with a letter or digit, no '/', no '..'), "
            "e.g. task.objectives=[helpful,harmless]"
        )


def check_range(field: str, value: Any, *, low: float | None = None, high: float | None = None,
                strict: bool = False, integer: bool = False, fix: str = "") -> None:
    """ConfigError unless ``value`` is a finite number (an int when ``integer``) in ``[low, high]`` (``(low, high]``
    when ``strict``); ``field`` is the key as the user writes it (``method.k``), ``fix`` an example value."""
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if strict else value >= low)) and (high is None or value <= high)
    if not ok:
        bounds = [f"{'>' if strict else '>='} {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else ""]
        what = f"{'an integer' if integer else 'a number'} {' and '.join(b for b in bounds if b)}".strip()
        raise ConfigError(f"{field}={value!r}: must be {what}{'; ' + fix if fix else ''}")


def check_choice(field: str, value: Any, choices: typing.Iterable[str]) -> None:
    """ConfigError unless ``value`` is one of ``choices`` (with a "did you mean")."""
    choices = list(choices)
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{field}={value!r} is not known: choose one of {', '.join(choices)}{hint}")


# ----------------------------------------------------------------------------------------------------------
# Shared pieces of every run
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """Which base model to align. ``"embedded"`` means the built-in tiny model (built offline on first use)."""

    name_or_path: str = "embedded"
    revision: str | None = None
    dtype: str = "float32"  # float32 | bfloat16 | float16
    trust_remote_code: bool = False  # never on unless the user asks
    attn_implementation: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name_or_path, str) or not self.name_or_path.strip():
            raise ConfigError(f"model.name_or_path={self.name_or_path!r}: give a model folder, a Hub id (org/name) "
                              "or 'embedded' (the built-in tiny model)")
        check_choice("model.dtype", self.dtype, DTYPE_NAMES)


@dataclass
class LoraSettings:
    """PEFT LoRA settings; ``r=0`` means full fine-tuning."""

    r: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] | None = None  # None: PEFT's defaults for the architecture

    def __post_init__(self) -> None:
        check_range("lora.r", self.r, low=0, integer=True, fix="0 is full fine-tuning, e.g. lora.r=64")
        if self.r > 0:  # alpha is unused in full fine-tuning (configs write alpha=0 there)
            check_range("lora.alpha", self.alpha, low=0, strict=True, fix="e.g. lora.alpha=16")
        check_range("lora.dropout", self.dropout, low=0, high=1, fix="e.g. lora.dropout=0.05")


@dataclass
class TrainSettings:
    """Optimiser and schedule settings shared by every trainer (mapped onto transformers' TrainingArguments)."""

    learning_rate: float = 1e-4
    max_steps: int = 100
    num_train_epochs: float = 1.0  # used only when max_steps <= 0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 256
    logging_steps: int = 10
    save_steps: int = 0  # 0: save only at the end
    bf16: bool = False
    gradient_checkpointing: bool = False
    report_to: str = "none"  # "tensorboard", "wandb", ...
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, low=0, fix="e.g. learning_rate=1e-4")
        check_range("max_steps", self.max_steps, integer=True, fix="<= 0 trains num_train_epochs instead")
        if self.max_steps <= 0:
            check_range("num_train_epochs", self.num_train_epochs, low=0, strict=True,
                        fix="with max_steps <= 0 training runs this many epochs")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "logging_steps"):
            check_range(name, getattr(self, name), low=1, integer=True)
        check_range("save_steps", self.save_steps, low=0, integer=True, fix="0 saves only at the end")
        check_range("warmup_ratio", self.warmup_ratio, low=0, high=1)
        check_range("weight_decay", self.weight_decay, low=0)
        check_range("max_grad_norm", self.max_grad_norm, low=0, fix="0 turns clipping off")


@dataclass
class GenerationSettings:
    """Decoding settings; they are part of each method's evaluation protocol (spec section 11)."""

    max_new_tokens: int = 48
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    batch_size: int = 32
    # the response is cut at the first of these (RiC/MORLHF's list for HH-style dialogue)
    stop_strings: list[str] = field(
        default_factory=lambda: ["\n\nHuman:", "\nHuman:", "\n\nAssistant:", "\nAssistant:", "\n\n\n", "###"]
    )
    forbid_eos_first: bool = True

    def __post_init__(self) -> None:
        check_range("max_new_tokens", self.max_new_tokens, low=1, integer=True)
        check_range("batch_size", self.batch_size, low=1, integer=True)
        check_range("top_k", self.top_k, low=0, integer=True, fix="0 turns top-k off")
        check_range("top_p", self.top_p, low=0, high=1, strict=True, fix="1.0 turns nucleus sampling off")
        if self.do_sample:
            check_range("temperature", self.temperature, low=0, strict=True, fix="or set do_sample=false (greedy)")


@dataclass
class TaskConfig:
    """The data and the objectives.

    ``name="embedded"`` is the built-in offline task. Otherwise ``train_data`` and ``test_prompts`` name a
    Hugging Face dataset id, a local dataset folder, or a JSONL/Parquet file; ``source`` names the adapter
    that turns a public dataset into moalign records (see ``moalign.data.sources``).
    """

    name: str = "embedded"
    objectives: list[str] = field(default_factory=lambda: ["positivity", "brevity"])
    # one reward spec per objective, in the same order: a built-in rule name, a preset name, or "hf:<path>"
    rewards: list[str] = field(default_factory=lambda: ["positivity", "brevity"])
    source: str | None = None
    train_data: str | None = None
    train_split: str = "train"
    test_prompts: str | None = None
    test_split: str = "test"
    max_train_samples: int | None = None
    num_test_prompts: int = 32
    prompt_template: str | None = None  # None: the source's own template; see moalign.data.templates

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ConfigError("task.objectives is empty: name at least one objective, e.g. "
                              "task.objectives=[helpful,harmless]")
        for name in self.objectives:
            check_safe_name(name, "task.objectives")
        repeated = sorted({o for o in self.objectives or [] if list(self.objectives).count(o) > 1})
        if repeated:
            raise ConfigError(f"task.objectives: {repeated} appear more than once; name each objective once")
        check_range("task.num_test_prompts", self.num_test_prompts, low=1, integer=True)
        if self.max_train_samples is not None:
            check_range("task.max_train_samples", self.max_train_samples, low=1, integer=True,
                        fix="or null for every train sample")


@dataclass
class EvalSettings:
    """How a policy family is swept and measured (spec section 10; docs/concepts/evaluation.md)."""

    grid: str = "ric"  # "ric" (11 points for k=2, 13 vectors for k=3) or "simplex:<n>" or "list:<w;w;...>"
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    hv_reference: list[float] | None = None  # raw-space point; None: train mean + hv_reference_z * train std
    hv_reference_z: float = -3.0  # the default reference point in train z-score units (every objective)
    normalization: str = "auto"  # "auto": fit z-scores on the task's train responses; "none"; or a ZScore JSON path
    stats_samples: int = 2000  # at most this many train responses are scored for the "auto" statistics
    reference_front: str | None = None  # JSON/CSV of raw-space points: IGD is reported against it
    judge: str = "reward"  # "reward" (per-objective reward models) or "hf:<generative judge path>"
    judge_tie_margin: float = 0.0  # reward judge: |difference| <= margin is a tie; LM judge: log-prob margin
    judge_swap: bool = True  # ask the judge in both orders; an order-dependent verdict counts as a tie
    judge_criteria: dict[str, str] | None = None  # objective -> wording in the generative judge's question
    win_rate: bool = False
    family: str | None = None  # family.json (or a run folder holding one); None: run_dir's, else the base model
    prompts_file: str | None = None  # JSONL with "prompt" (and optional "golden"); None: the task's test prompts
    samples_per_point: int = 8  # generations shown per point in the HTML report
    progress: bool = True  # progress bars during generation and scoring
    seed: int = 8888  # the same seed at every w: differences between points are not sampling noise

    def __post_init__(self) -> None:
        check_range("eval.stats_samples", self.stats_samples, low=1, integer=True)
        check_range("eval.samples_per_point", self.samples_per_point, low=0, integer=True)
        check_range("eval.judge_tie_margin", self.judge_tie_margin, low=0)
        check_range("eval.hv_reference_z", self.hv_reference_z)
        check_range("eval.seed", self.seed, low=0, integer=True)


T_Method = TypeVar("T_Method")


@dataclass
class RunConfig:
    """One run: a method (or plain evaluation) on a task with a model.

    ``method`` holds the method's own config dataclass; its type comes from the method registry.
    """

    run_dir: str = "runs/default"
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)
    method: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.run_dir, str) or not self.run_dir.strip():
            raise ConfigError(f"run_dir={self.run_dir!r}: give the folder the run writes to, e.g. run_dir=runs/x")
        check_range("seed", self.seed, low=0, integer=True)


# ----------------------------------------------------------------------------------------------------------
# Loading: YAML -> dict -> dataclass, with overrides
# ----------------------------------------------------------------------------------------------------------


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with an error that names the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass the path of a YAML file (see configs/).")
    try:
        data = yaml.safe_load(_read_utf8(path)) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values, got {type(data).__name__}")
    return data


def _read_utf8(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is named with its offset and line (not a bare traceback)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}) "
            f"({err.reason}); save the file as UTF-8"
        ) from None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of ``data`` with each ``a.b=c`` override set; values are parsed as YAML scalars/lists."""
    data = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected the form key.subkey=value, e.g. train.max_steps=50")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key!r} is a value, not a section")
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def from_dict(cls: type[T], data: dict | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise with a "did you mean" suggestion."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a section (a mapping of keys to values), got {data!r} "
                          f"({type(data).__name__}); write it as `key: value` lines under the section name")
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(fields))}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    for key, value in data.items():  # a partial nested section keeps the field's own defaults
        default = _field_default(fields[key])
        if isinstance(value, dict) and dataclasses.is_dataclass(default):
            data[key] = _deep_merge(to_dict(default), value)
    kwargs = {key: _coerce(hints[key], value, _key_path(where, key)) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def _key_path(where: str, key: str) -> str:
    """``"c.yaml"`` + ``task`` -> ``"c.yaml: task"``; ``"c.yaml: task"`` + ``name`` -> ``"c.yaml: task.name"``."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict that YAML/JSON can write."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_run_config(
    path: str | Path | None, overrides: list[str] | None = None, method_cls: type | None = None
) -> RunConfig:
    """The one entry point: YAML file (optional) + overrides -> validated :class:`RunConfig`."""
    data = load_yaml(path) if path else {}
    data = apply_overrides(data, overrides or [])
    where = str(path) if path else "config"
    method_data = data.pop("method", None)
    config = from_dict(RunConfig, data, where)
    if method_cls is not None:
        config.method = from_dict(method_cls, method_data, f"{where}: method")
    elif method_data:
        raise ConfigError(f"{where}: a 'method' section was given but this command takes no method")
    return config


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from moalign.io_utils import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(config), sort_keys=False))


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Turn a YAML value into the field's type; nested dataclasses recurse, simple types are checked."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _coerce(non_none[0], value, where) if len(non_none) == 1 else value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return from_dict(hint, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, where) for v in value] if args else list(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads "5e-7" as a string
        except ValueError:
            pass
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        if hint is int and isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _deep_copy(data: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}
