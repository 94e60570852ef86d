"""What every dataset adapter shares: the record it returns, how a dataset is opened, option parsing.

A dataset is named by a *spec*: a Hub id, a local folder or a JSON/JSONL/Parquet/CSV file, optionally
followed by ``?key=value&...`` options (the same convention as reward specs). The loader keys ``name``
(the dataset config), ``data_dir`` and ``revision`` go to ``datasets.load_dataset``; every other key is an
option of the adapter (each adapter lists its own), except ``split``, which replaces the task's split for this
spec (one split per objective: ``data/prefs?split=helpful``). Example:
``Anthropic/hh-rlhf?data_dir=harmless-base`` or ``data/pku.jsonl?template=hh``.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from moalign.data.schema import DataValidationError, PairSet, ScoredSet
from moalign.hub import check_hub_source

log = logging.getLogger("moalign.data.sources")

LOADER_KEYS = ("name", "data_dir", "revision")
FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class SourceData:
    """A public dataset in moalign's records.

    ``responses``: every distinct (prompt, response), with the dataset's own scores when it has any
    (0 score columns otherwise). ``pairs``: per-objective preference pairs (None if the dataset has none).
    ``prompts``: distinct formatted prompts, in data order (test prompts are drawn from these).
    ``golden``: prompt -> the dataset's best response to it (reference answers for win rates).
    ``dropped``: reason -> number of rows or items skipped, so nothing is lost silently.
    """

    responses: ScoredSet
    pairs: PairSet | None
    prompts: list[str]
    golden: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def subset_prompts(self, keep: Callable[[str], bool]) -> SourceData:
        """Only the rows, pairs and prompts whose prompt ``keep`` accepts."""
        responses = self.responses.subset(np.array([keep(p) for p in self.responses.prompts], dtype=bool))
        pairs = None if self.pairs is None else self.pairs.subset(
            np.array([keep(p) for p in self.pairs.prompts], dtype=bool))
        return SourceData(responses=responses, pairs=pairs, prompts=[p for p in self.prompts if keep(p)],
                          golden={p: g for p, g in self.golden.items() if keep(p)}, dropped=dict(self.dropped))


def merge_sources(parts: dict[str | None, SourceData]) -> SourceData:
    """One SourceData from several (one per objective): responses once per (prompt, response), pair ids
    prefixed with their objective, prompts in first-seen order, each prompt's first golden answer."""
    if len(parts) == 1:
        return next(iter(parts.values()))
    out = Collector(next(iter(parts.values())).responses.objectives)
    pairs = []
    for key, part in parts.items():
        r = part.responses
        for i in range(len(r)):
            out.response(r.prompts[i], r.responses[i], f"{key}/{r.ids[i]}", r.scores[i])
        if part.pairs is not None:
            pairs.append((key, part.pairs))
        for prompt, golden in part.golden.items():
            out.golden.setdefault(prompt, golden)
        for reason, count in part.dropped.items():
            out.dropped[f"{key}: {reason}"] = count
    merged = out.result(pairs=_concat_pairs(pairs) if pairs else None)
    merged.prompts = list(dict.fromkeys(p for part in parts.values() for p in part.prompts))
    return merged


def _concat_pairs(parts: list[tuple[str | None, PairSet]]) -> PairSet:
    if any(p.chosen_scores is not None for _, p in parts):
        raise DataValidationError("pairs with scores cannot be merged across datasets; give one dataset")
    return PairSet(
        prompts=[x for _, p in parts for x in p.prompts], chosen=[x for _, p in parts for x in p.chosen],
        rejected=[x for _, p in parts for x in p.rejected], objective=[x for _, p in parts for x in p.objective],
        objectives=list(dict.fromkeys(o for _, p in parts for o in p.objectives)),
        ids=[f"{key}/{x}" for key, p in parts for x in p.ids],
    )


@dataclass(frozen=True)
class Source:
    """One adapter: ``build`` turns an opened ``datasets.Dataset`` into :class:`SourceData`."""

    name: str
    hub_id: str
    objectives: tuple[str, ...]  # the objectives its pairs / scores are labelled with (by default)
    default_template: str | None  # None: prompts in the data are already formatted
    build: Callable[..., SourceData] | None = None  # (dataset, template, spec, **options) -> SourceData
    options: dict[str, Any] = field(default_factory=dict)  # adapter option -> default
    config: str | None = None  # the dataset config passed as load_dataset(name=...) for Hub ids
    # files in moalign's own layout skip `datasets`: reader(path, split, max_samples, template) -> SourceData
    reader: Callable[..., SourceData] | None = None
    task_aware: bool = False  # build also takes objectives= (the task's) and chat= (a ChatRenderer or None)


def split_spec(spec: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """``"path?name=x&objective=y"`` -> (path, loader kwargs, adapter options)."""
    path, _, query = str(spec).partition("?")
    loader, options = {}, {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        (loader if key in LOADER_KEYS else options)[key] = value
    return path, loader, options


def resolve_options(source: Source, given: dict[str, Any]) -> dict[str, Any]:
    """The adapter's options with ``given`` applied; unknown keys fail with a did-you-mean."""
    out = dict(source.options)
    for key, value in given.items():
        if key not in out:
            close = difflib.get_close_matches(key, list(out) + list(LOADER_KEYS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            valid = ", ".join(list(out) + list(LOADER_KEYS))
            raise ValueError(f"source {source.name!r}: unknown option {key!r}; {hint}valid options: {valid}")
        out[key] = _convert(source.name, key, out[key], value)
    return out


def _convert(source: str, key: str, default: Any, value: Any) -> Any:
    """Option values arrive as strings from a spec: give them the type of the default."""
    if default is None or not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        return type(default)(value)
    except ValueError:
        raise ValueError(f"source {source!r}: option {key}={value!r} must be a {type(default).__name__}") from None


def open_split(path: str, split: str, loader: dict[str, str], config: str | None = None):
    """Open one split through ``datasets`` (a Hub id, a local folder or a single data file)."""
    import datasets

    local = Path(path)
    if local.is_file():
        builder = FILE_BUILDERS.get(local.suffix.lower())
        if builder is None:
            raise DataValidationError(f"unknown data file type {local.suffix!r}; use one of "
                                      f"{', '.join(FILE_BUILDERS)}", file=path)
        # a single file serves whatever split is asked for (slices such as train[:90%] included)
        return datasets.load_dataset(builder, data_files={split_name(split): str(local)}, split=split)
    if local.is_dir() and _is_saved_dataset(local):
        data = datasets.load_from_disk(str(local))
        if not isinstance(data, datasets.DatasetDict):
            return data  # a single saved Dataset serves whatever split is asked for
        if split not in data:
            raise DataValidationError(f"no split {split!r}; the folder holds {', '.join(data)}", file=path)
        return data[split]
    kwargs = dict(loader)
    if config and "name" not in kwargs and not local.exists():
        kwargs["name"] = config
    if not local.exists():  # a Hub id: fail at once, not after a minute of retries, when it cannot load here
        check_hub_source(path, what="dataset", setting=f"dataset {path!r} (task.train_data / task.test_prompts)",
                         repo_type="dataset", revision=kwargs.get("revision"))
    return datasets.load_dataset(path, split=split, **kwargs)


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def split_name(split: str) -> str:
    """``"train[:90%]"`` -> ``"train"``: the split a slice expression reads."""
    return split.split("[", 1)[0].strip()


def serves_every_split(path: str) -> bool:
    """True for a single data file or a saved single ``Dataset``: any split asked of it is the same rows."""
    local = Path(path)
    if local.is_file():
        return True
    return local.is_dir() and (local / "state.json").is_file() and not (local / "dataset_dict.json").is_file()


def require_columns(dataset, names: list[str], source: str, spec: str) -> None:
    """Fail early, with a did-you-mean, when the dataset lacks a column the adapter reads."""
    present = list(dataset.column_names)
    for name in names:
        if name not in present:
            close = difflib.get_close_matches(name, present, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataValidationError(
                f"missing column {name!r} for source {source!r}; {hint}columns found: {', '.join(present)}. "
                "Check that the data is in this dataset's published layout (see docs/concepts/data.md)",
                file=spec, field=name,
            )


class Collector:
    """Accumulates distinct responses, pairs and golden answers while an adapter walks the rows."""

    def __init__(self, objectives: list[str] | None = None):
        self.objectives = list(objectives or [])
        self.seen: dict[tuple[str, str], int] = {}
        self.prompts, self.responses, self.ids, self.scores = [], [], [], []
        self.pair_rows: list[tuple[str, str, str, str, str]] = []
        self.golden: dict[str, str] = {}  # first best response per prompt; its keys order the prompts
        self.dropped: dict[str, int] = {}

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def response(self, prompt: str, text: str, rid: str, scores=()) -> None:
        """Add a response once per distinct (prompt, text); the first occurrence's id is kept."""
        if (prompt, text) in self.seen:
            return
        self.seen[(prompt, text)] = len(self.responses)
        self.prompts.append(prompt)
        self.responses.append(text)
        self.ids.append(rid)
        self.scores.append(list(scores))

    def pair(self, prompt: str, chosen: str, rejected: str, objective: str, pid: str) -> None:
        if chosen == rejected:
            self.drop(f"{objective}: identical chosen and rejected")
            return
        self.pair_rows.append((prompt, chosen, rejected, objective, pid))

    def result(self, pairs: PairSet | None = None) -> SourceData:
        k = len(self.objectives)
        responses = ScoredSet(
            prompts=self.prompts, responses=self.responses, ids=self.ids, objectives=self.objectives,
            scores=np.asarray(self.scores, dtype=np.float64).reshape(len(self.prompts), k),
        )
        if pairs is None and self.pair_rows:
            p, c, r, o, i = (list(col) for col in zip(*self.pair_rows))
            pairs = PairSet(prompts=p, chosen=c, rejected=r, objective=o, ids=i,
                            objectives=list(dict.fromkeys(o)))
        for reason, count in self.dropped.items():
            log.info("skipped %d: %s", count, reason)
        prompts = list(self.golden) if self.golden else list(dict.fromkeys(self.prompts))
        return SourceData(responses=responses, pairs=pairs, prompts=prompts,
                          golden=self.golden, dropped=dict(self.dropped))
