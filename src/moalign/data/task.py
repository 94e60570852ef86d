"""A run's data: train responses (and pairs, when the dataset has them), test prompts and golden answers.

``load_task`` is the one place a :class:`moalign.config.TaskConfig` becomes data:

* ``task.name == "embedded"``: the built-in offline task (:func:`moalign.data.embedded.load_embedded_task`);
  its responses are unscored and it has no pairs (methods score them with ``task.rewards``).
* otherwise ``task.source`` names an adapter (:data:`moalign.data.sources.SOURCES`) that reads
  ``task.train_data`` (split ``task.train_split``) and ``task.test_prompts`` (split ``task.test_split``;
  when unset, the test split of ``train_data``). Each is a Hub id, a local folder or a file, optionally with
  ``?key=value`` options (see :mod:`moalign.data.sources.base`). ``train_data`` may map objectives to
  datasets (``{helpful: a.jsonl, harmless: b.jsonl}``): each one's pairs are labelled with its key.

The test prompts are never the training data by accident: when they would come from the same rows (the
same split, or a single file, which serves every split), ``load_task`` refuses with the fix, unless
``task.test_split`` is ``"holdout:<fraction or count>[:seed=<n>]"``: a seeded set of the distinct train
prompts is then held out, every row with one of them leaves the training data, and the split is recorded in
``TaskData.holdout``. Slices of one split (``train[:90%]`` / ``train[90%:]``) are explicit and accepted.

``max_train_samples`` keeps the first rows of the train split (a holdout is drawn from those rows); the test
prompts are the first ``num_test_prompts`` distinct prompts of the test split, in data order (deterministic,
independent of the run seed). ``prompt_template`` formats raw prompts; ``None`` means the source's own
template. Conversational data is rendered with the policy's chat template (:mod:`moalign.data.chat`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moalign.config import ConfigError, TaskConfig
from moalign.data.schema import PairSet, ScoredSet

log = logging.getLogger("moalign.data.task")


@dataclass
class TaskData:
    """What a method trains on and what the evaluation prompts with."""

    responses: ScoredSet  # train responses; ``scores`` may have 0 columns (unscored)
    pairs: PairSet | None  # the dataset's own preference pairs, when it has any
    test_prompts: list[str]
    golden: list[str] | None  # reference answers to ``test_prompts`` (for win rates), when known for all
    holdout: dict | None = None  # a held-out test split: seed, size, test_prompts / train_prompts counts
    # rendered prompt -> its messages, for conversational data (reward models render them with their own template)
    conversations: dict[str, list[dict]] = field(default_factory=dict)


def load_task(task: TaskConfig, seed: int = 0, *, tokenizer: Any = None) -> TaskData:
    """Load the data ``task`` describes (see the module docstring).

    ``tokenizer`` (a tokenizer, or its name/folder) renders conversational data under ``chat_template: auto``
    in place of ``task.chat_tokenizer``; standard (string) data never needs one.
    """
    if task.num_test_prompts < 1:
        raise ValueError(f"task.num_test_prompts={task.num_test_prompts}: must be at least 1")
    if task.max_train_samples is not None and task.max_train_samples < 1:
        raise ValueError(f"task.max_train_samples={task.max_train_samples}: must be at least 1 (or null for all)")
    if task.name == "embedded":
        return _embedded(task, seed)
    return _from_source(task, tokenizer)


def _embedded(task: TaskConfig, seed: int) -> TaskData:
    from moalign.data.embedded import load_embedded_task

    built = load_embedded_task(seed)
    n = len(built.train_prompts)
    responses = ScoredSet(
        prompts=list(built.train_prompts), responses=list(built.train_responses),
        scores=np.zeros((n, 0)), objectives=[],
    )
    if task.max_train_samples is not None:
        responses = responses.subset(np.arange(min(task.max_train_samples, n)))
    k = task.num_test_prompts
    return TaskData(responses=responses, pairs=None, test_prompts=list(built.test_prompts[:k]),
                    golden=list(built.golden_responses[:k]))


def train_specs(task: TaskConfig) -> dict[str | None, str]:
    """``task.train_data`` as {objective or None: spec}."""
    if isinstance(task.train_data, dict):
        return dict(task.train_data)
    return {None: task.train_data}


def _from_source(task: TaskConfig, tokenizer: Any) -> TaskData:
    from moalign.data.chat import chat_renderer
    from moalign.data.sources import SOURCES, load_source
    from moalign.data.sources.base import merge_sources

    if not task.source:
        raise ValueError(f"task.source is not set for task {task.name!r}; name the dataset adapter, one of "
                         f"{', '.join(SOURCES)} (or set task.name: embedded for the built-in task)")
    if not task.train_data:
        raise ValueError("task.train_data is not set; give a Hub dataset id, a local folder or a data file")
    check_held_out(task)
    _check_template(task.prompt_template)
    chat = chat_renderer(task, tokenizer)
    specs = train_specs(task)

    def load(spec_map: dict, split: str, cap: int | None, objectives: list[str] | None):
        return merge_sources({key: load_source(task.source, spec, split, cap, task.prompt_template, objective=key,
                                               objectives=objectives, chat=chat)
                              for key, spec in spec_map.items()})

    train = load(specs, task.train_split, task.max_train_samples, list(task.objectives))
    holdout = None
    if task.holdout() is not None:
        train, test, holdout = hold_out(train, *task.holdout())
    elif task.test_prompts:
        test = load({None: task.test_prompts}, task.test_split, None, None)
    else:
        test = load(specs, task.test_split, None, None)
    prompts = test.prompts[: task.num_test_prompts]
    golden = [test.golden.get(p) for p in prompts]
    return TaskData(
        responses=train.responses, pairs=train.pairs, test_prompts=prompts,
        golden=golden if prompts and all(g is not None for g in golden) else None, holdout=holdout,
        conversations=dict(chat.conversations) if chat is not None else {},
    )


def _check_template(name: str | None) -> None:
    from moalign.data.templates import get_template

    if name is None:
        return
    try:
        get_template(name)
    except ValueError as err:
        raise ConfigError(f"task.prompt_template: {err}") from None


def check_held_out(task: TaskConfig) -> None:
    """ConfigError when the test prompts would be the training rows (see the module docstring)."""
    if task.holdout() is not None:
        if task.test_prompts:
            raise ConfigError(f"task.test_split={task.test_split!r} holds out prompts of task.train_data, but "
                              f"task.test_prompts={task.test_prompts!r} is set too; keep one of them")
        return
    if task.name == "embedded" or not task.train_data:
        return
    from moalign.data.sources import get_source

    reads_files_whole = get_source(task.source).reader is not None if task.source else False
    for spec in ([task.test_prompts] if task.test_prompts else train_specs(task).values()):
        why = _same_rows(spec, task, reads_files_whole) if spec in train_specs(task).values() else None
        if why:
            raise ConfigError(
                f"task.test_split={task.test_split!r}: the evaluation prompts would be the training data ({spec}: "
                f"{why}), so the evaluation would measure training prompts. Hold prompts out explicitly with "
                "task.test_split=holdout:0.1 (a seeded split of the prompts, disjoint from training), give "
                "task.test_prompts=<a separate file>, or name another split the dataset has"
            )


def _same_rows(spec: str, task: TaskConfig, reads_files_whole: bool) -> str | None:
    """Why the test split of ``spec`` is its train split, or None when they differ."""
    from moalign.data.sources.base import serves_every_split, split_name, split_spec

    path, _, options = split_spec(spec)
    train = options.get("split", task.train_split)
    test = options.get("split", task.test_split)
    if serves_every_split(path) and (reads_files_whole or split_name(train) != split_name(test)):
        return "a single file or saved Dataset serves every split"
    if train == test or (split_name(train) == split_name(test) and not ("[" in train and "[" in test)):
        return f"train split {train!r} and test split {test!r} overlap"
    return None  # distinct splits, or slices of one split written out in the config


def hold_out(train, size: float, seed: int):
    """(train without the held-out prompts, test = the held-out prompts, the record of the split)."""
    from moalign.data.sources.base import SourceData

    pool = list(dict.fromkeys([*train.prompts, *train.responses.prompts,
                               *(train.pairs.prompts if train.pairs is not None else [])]))
    n = int(round(size * len(pool))) if size < 1 else int(size)
    n = max(1, n)
    if len(pool) < 2 or n >= len(pool):
        raise ConfigError(f"task.test_split=holdout:{size:g}: holds out {n} of {len(pool)} distinct train prompts, "
                          "leaving none to train on; use a smaller holdout or more data (task.max_train_samples)")
    picked = set(np.random.default_rng(seed).permutation(len(pool))[:n].tolist())
    held = {pool[i] for i in picked}
    test_prompts = [p for p in pool if p in held]  # data order
    kept = train.subset_prompts(lambda p: p not in held)
    test = SourceData(responses=ScoredSet([], [], np.zeros((0, 0)), []), pairs=None, prompts=test_prompts,
                      golden={p: g for p, g in train.golden.items() if p in held})
    record = {"seed": seed, "size": size if size < 1 else int(size), "test_prompts": len(test_prompts), "train_prompts": len(pool) - n}
    log.info("held out %d of %d train prompts for the test split (seed %d)", n, len(pool), seed)
    return kept, test, record
