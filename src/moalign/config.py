"""Typed configuration: dataclasses filled from YAML files and ``a.b=c`` command-line overrides.

Every run is described by one :class:`RunConfig`. Unknown keys fail loudly with a "did you mean" so that a
misspelt option never silently falls back to its default. The resolved config is written into the run
directory, so a run can always be reproduced from its folder alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


# A setting added after runs already existed: a stage's inputs hash leaves it out while it holds its default
# (to_dict(for_hash=True)), so an upgrade does not retrain finished stages.
ADDED_LATER = {"hash": "when_set"}
# A setting of the engine, not of the result (how much GPU memory vLLM may take): never part of a stage's hash.
ENGINE_SETTING = {"hash": "never"}
# the task sources that read conversational (chat) data, whose prompts a chat template renders
CHAT_SOURCES = ("trl",)


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
    """Optimiser and schedule settings shared by every trainer (mapped onto transformers' TrainingArguments by
    :func:`moalign.train.args.training_kwargs`); any other TrainingArguments field goes into ``extra``."""

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
    save_steps: int = 0  # N: checkpoint every N steps, a killed stage resumes there; 0: none (restarts at step 0)
    bf16: bool = False
    gradient_checkpointing: bool = False
    report_to: str = "none"  # "tensorboard", "wandb", ...: events go to <run>/logs/<stage>/
    # keep the Trainer checkpoints in <stage>/checkpoints/ once the stage is done
    keep_checkpoints: bool = field(default=False, metadata=ADDED_LATER)
    lora: LoraSettings = field(default_factory=LoraSettings)
    # any other transformers.TrainingArguments field (optim, adam_beta2, save_total_limit, ...), as written in
    # YAML next to the fields above; the loader gathers them here (see TRAINING_ARGUMENTS_SET_BY_MOALIGN)
    extra: dict[str, Any] = field(default_factory=dict, metadata=ADDED_LATER)

    @classmethod
    def gather_unknown_keys(cls, data: dict) -> dict:
        """The loader's hook: keys that are not fields of this class move into ``extra`` (checked there)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = {key: value for key, value in data.items() if key not in known}
        if not unknown:
            return data
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            return data  # __post_init__ names the bad value
        return {**{k: v for k, v in data.items() if k in known}, "extra": {**extra, **unknown}}

    def __post_init__(self) -> None:
        check_training_arguments(self.extra)
        check_range("learning_rate", self.learning_rate, low=0, fix="e.g. learning_rate=1e-4")
        check_range("max_steps", self.max_steps, integer=True, fix="<= 0 trains num_train_epochs instead")
        if self.max_steps <= 0:
            check_range("num_train_epochs", self.num_train_epochs, low=0, strict=True,
                        fix="with max_steps <= 0 training runs this many epochs")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "logging_steps"):
            check_range(name, getattr(self, name), low=1, integer=True)
        check_range("save_steps", self.save_steps, low=0, integer=True, fix="0 writes no Trainer checkpoints")
        check_range("warmup_ratio", self.warmup_ratio, low=0, high=1)
        check_range("weight_decay", self.weight_decay, low=0)
        check_range("max_grad_norm", self.max_grad_norm, low=0, fix="0 turns clipping off")
        if "warmup_steps" in self.extra and self.warmup_ratio:
            raise ConfigError(f"warmup_steps={self.extra['warmup_steps']!r} and warmup_ratio={self.warmup_ratio!r} "
                              "both set the warm-up; give one of them")


# TrainingArguments fields that moalign sets itself, and the setting that controls each
TRAINING_ARGUMENTS_SET_BY_MOALIGN = {
    "output_dir": "moalign checkpoints into <run_dir>/_checkpoints/<stage>/; choose the run folder with run_dir=...",
    "seed": "the run's seed (seed=... at the top of the config, or the method's own seed setting)",
    "data_seed": "the run's seed (seed=... at the top of the config, or the method's own seed setting)",
    "remove_unused_columns": "moalign's collators read the extra columns, so it is always false",
    "use_cpu": "moalign trains on the GPU when one is visible; hide it with CUDA_VISIBLE_DEVICES= to train on CPU",
    "resume_from_checkpoint": "moalign resumes a killed stage from its last complete checkpoint: rerun the command",
    "local_rank": "the launcher sets it (accelerate launch / torchrun)",
    "do_train": "moalign's stages decide what runs",
    "do_eval": "moalign's stages decide what runs; evaluation is the eval section",
    "do_predict": "moalign's stages decide what runs; evaluation is the eval section",
}


@functools.lru_cache(maxsize=1)
def training_argument_fields() -> frozenset[str]:
    """The field names of ``transformers.TrainingArguments`` (imported only when a config uses one)."""
    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments))


def check_training_arguments(extra: Any) -> None:
    """ConfigError unless every key of ``extra`` is a ``TrainingArguments`` field that moalign leaves to the user;
    an unknown key gets a "did you mean" over TrainSettings' own fields and TrainingArguments'."""
    if not isinstance(extra, dict):
        raise ConfigError(f"extra={extra!r}: expected a mapping of transformers.TrainingArguments fields to values")
    if not extra:
        return
    own = {f.name for f in dataclasses.fields(TrainSettings)} - {"extra"}
    known = training_argument_fields()
    for key in extra:
        if key in TRAINING_ARGUMENTS_SET_BY_MOALIGN:
            raise ConfigError(f"{key!r} is set by moalign, not in the train section: "
                              f"{TRAINING_ARGUMENTS_SET_BY_MOALIGN[key]}")
        if key in own:
            raise ConfigError(f"extra.{key}: {key!r} is a train setting of its own; write it next to the others")
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(own | known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "the keys: `moalign train METHOD --help`"
            raise ConfigError(f"unknown key {key!r}; {hint} (a train section takes its own settings and any "
                              "transformers.TrainingArguments field)")


GENERATION_BACKENDS = ("hf", "vllm")


def vllm_unavailable_reason() -> str | None:
    """Why vLLM cannot generate on this machine (not installed; no GPU), or None when it can."""
    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed (pip install vllm, on a machine with a CUDA GPU)"
    import torch

    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU and this machine has none"
    return None


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
    # "hf": transformers' generate (every model and family); "vllm": vLLM decodes models saved as folders
    # (full checkpoints, plain LoRA adapters) on a GPU, seeded per prompt (README "At scale"; moalign.eval.vllm_generate)
    backend: str = field(default="hf", metadata=ADDED_LATER)
    # [INF] vLLM engine settings (not in the hash: they do not change what is sampled)
    vllm_gpu_memory_utilization: float = field(default=0.5, metadata=ENGINE_SETTING)
    vllm_max_model_len: int | None = field(default=None, metadata=ENGINE_SETTING)  # None: prompt + max_new_tokens

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, GENERATION_BACKENDS)
        check_range("vllm_gpu_memory_utilization", self.vllm_gpu_memory_utilization, low=0, high=1, strict=True)
        if self.vllm_max_model_len is not None:
            check_range("vllm_max_model_len", self.vllm_max_model_len, low=1, integer=True)
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
    that turns a public dataset into moalign records (see ``moalign.data.sources``; ``trl`` reads TRL's
    preference format). ``train_data`` may also map objectives to data (one file or split per objective).
    The test prompts must not be the training data: give ``test_prompts``, a split the data has, or
    ``test_split: "holdout:<fraction or count>[:seed=<n>]"`` (a seeded split of the train prompts).
    Conversational data is rendered with a chat template: ``chat_template`` is ``"auto"`` (the policy's
    tokenizer, ``chat_tokenizer``, which the run config fills from ``model.name_or_path``), ``"none"``
    or a tokenizer name/folder. See docs/concepts/data.md.
    """

    name: str = "embedded"
    objectives: list[str] = field(default_factory=lambda: ["positivity", "brevity"])
    # one reward spec per objective, in the same order: a built-in rule name, a preset name, or "hf:<path>"
    rewards: list[str] = field(default_factory=lambda: ["positivity", "brevity"])
    source: str | None = None
    train_data: str | dict[str, str] | None = None  # a spec, or {objective: spec} (one file or split each)
    train_split: str = "train"
    test_prompts: str | None = None
    test_split: str = "test"  # a split name, or "holdout:<fraction or count>[:seed=<n>]"
    max_train_samples: int | None = None
    num_test_prompts: int = 32
    prompt_template: str | None = None  # None: the source's own template; see moalign.data.templates
    # conversational data: "auto" (chat_tokenizer), "none", or a tokenizer path/id
    chat_template: str = field(default="auto", metadata=ADDED_LATER)
    # the policy's tokenizer "auto" renders with; filled from model.name_or_path for sources that read
    # conversational data (CHAT_SOURCES)
    chat_tokenizer: str | None = field(default=None, metadata=ADDED_LATER)

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
        self._check_train_data()
        if not isinstance(self.chat_template, str) or not self.chat_template.strip():
            raise ConfigError(f"task.chat_template={self.chat_template!r}: use 'auto' (the policy's tokenizer), "
                              "'none', or a tokenizer folder / Hub id")
        if self.test_split.startswith("holdout"):
            size, seed = self.holdout()
            self.test_split = f"holdout:{size:g}:seed={seed}"  # the seed is written into the resolved config

    def _check_train_data(self) -> None:
        """``train_data`` is a spec or a mapping {objective: spec} whose keys are among ``objectives``."""
        data = self.train_data
        if data is None or isinstance(data, str):
            return
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"task.train_data={data!r}: give one dataset (a file, folder or Hub id) or a mapping "
                              "{objective: dataset}, e.g. {helpful: data/helpful.jsonl, harmless: data/harmless.jsonl}")
        for key, spec in data.items():
            if key not in self.objectives:
                close = difflib.get_close_matches(str(key), self.objectives, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(f"task.train_data: key {key!r} is not one of task.objectives={self.objectives}; "
                                  f"{hint}each key names the objective its data's pairs are for")
            if not isinstance(spec, str) or not spec.strip():
                raise ConfigError(f"task.train_data.{key}={spec!r}: give a file, a dataset folder or a Hub id")

    def holdout(self) -> tuple[float, int] | None:
        """(size, seed) of a ``holdout:<size>[:seed=<n>]`` test split (size < 1: a fraction of the distinct
        train prompts; otherwise a count), or None for a named split."""
        if not self.test_split.startswith("holdout"):
            return None
        found = re.fullmatch(r"holdout:([0-9.eE+-]+)(?::seed=([0-9]+))?", self.test_split)
        fix = ("write it as holdout:<fraction in (0, 1) or a count of prompts>[:seed=<n>], "
               "e.g. task.test_split=holdout:0.1 or holdout:200:seed=3")
        try:
            size = float(found.group(1)) if found else math.nan
        except ValueError:
            size = math.nan
        if not (0 < size < 1 or (size >= 1 and size.is_integer())):
            raise ConfigError(f"task.test_split={self.test_split!r}: {fix}")
        return size, int(found.group(2) or 0)

    def fill_chat_tokenizer(self, model: str) -> None:
        """With ``chat_template: auto``, render with the run's policy tokenizer unless one is set already."""
        if self.chat_template == "auto" and self.chat_tokenizer is None and self.source in CHAT_SOURCES:
            self.chat_tokenizer = model


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
    # [ours] a point whose collapse rate is >= this is degenerate
    degenerate_threshold: float = field(default=0.5, metadata=ADDED_LATER)
    # false: front indicators leave degenerate points out
    include_degenerate: bool = field(default=False, metadata=ADDED_LATER)
    progress: bool = True  # progress bars during generation and scoring
    seed: int = 8888  # the same seed at every w: differences between points are not sampling noise

    def __post_init__(self) -> None:
        check_range("eval.stats_samples", self.stats_samples, low=1, integer=True)
        check_range("eval.samples_per_point", self.samples_per_point, low=0, integer=True)
        check_range("eval.judge_tie_margin", self.judge_tie_margin, low=0)
        check_range("eval.hv_reference_z", self.hv_reference_z)
        check_range("eval.seed", self.seed, low=0, integer=True)
        check_range("eval.degenerate_threshold", self.degenerate_threshold, low=0, high=1, strict=True,
                    fix="give a share of collapsed responses in (0, 1], e.g. eval.degenerate_threshold=0.5")


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
        self.task.fill_chat_tokenizer(self.model.name_or_path)


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
        node[keys[-1]] = _override_value(item, raw)
    return data


def _override_value(item: str, raw: str) -> Any:
    """The YAML value of one ``a.b=c`` override; a value YAML cannot read is refused with the quoting fix."""
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem}); quote values that hold "
                          "YAML characters such as ? : [ ] { } #, e.g. task.rewards=['hf:org/rm?convention=chat']"
                          ) from None


def from_dict(cls: type[T], data: dict | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise with a "did you mean" suggestion."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a section (a mapping of keys to values), got {data!r} "
                          f"({type(data).__name__}); write it as `key: value` lines under the section name")
    data = dict(data or {})
    gather = getattr(cls, "gather_unknown_keys", None)
    if gather is not None:  # a class that takes more keys than its fields (TrainSettings: TrainingArguments')
        data = gather(data)
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


def to_dict(obj: Any, *, for_hash: bool = False) -> Any:
    """Dataclass (nested) -> plain dict that YAML/JSON can write.

    ``for_hash``: the view a stage's inputs hash is taken of, in which a field marked ``ADDED_LATER`` is left
    out while it holds its default, so adding a setting does not invalidate the stages of existing runs, and a
    field marked ``ENGINE_SETTING`` is always left out.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name), for_hash=for_hash) for f in dataclasses.fields(obj)
                if not (for_hash and _left_out_of_hash(obj, f))}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, for_hash=for_hash) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v, for_hash=for_hash) for k, v in obj.items()}
    return obj


def _left_out_of_hash(obj: Any, f: dataclasses.Field) -> bool:
    rule = f.metadata.get("hash")
    return rule == "never" or (rule == "when_set" and _at_default(obj, f))


def _at_default(obj: Any, f: dataclasses.Field) -> bool:
    return getattr(obj, f.name) == _field_default(f)


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

    atomic_write_text(Path(path), config_yaml(config))


def config_yaml(config: Any) -> str:
    """The config as YAML, every field, in field order; a string holding a line break is written quoted
    (``"\\n\\nHuman:"``), so it reads as it does in Python."""
    return yaml.dump(to_dict(config), Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True)


class _ConfigDumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = '"' if "\n" in value or "\t" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ConfigDumper.add_representer(str, _represent_str)


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
