"""``moalign``: files in moalign's own layout (see :mod:`moalign.data.io`), read by moalign's validating loaders.

The kind of file is told by its columns:

* pairs (``prompt``, ``chosen``, ``rejected``, ``objective``, ...): become ``pairs``; both sides of every
  pair become (unscored) responses; golden = the first chosen response of each prompt;
* scored responses (``prompt``, ``response``, ``score.*``): become ``responses``; no pairs
  (derive them with :func:`moalign.data.pairs.pairs_from_scored`);
* prompts (``prompt``, optional ``golden``): test prompts, with reference answers when given.

Prompts are used as stored (moalign files hold formatted prompts) unless ``task.prompt_template`` names a
template, which then formats every prompt (raw prompts: ``hh`` gives ``"\n\nHuman: {prompt}\n\nAssistant:"``).
A folder saved from a ``DatasetDict`` is read at its ``<split>`` subfolder; a single file serves any split
(so it cannot also be the test split: see :func:`moalign.data.task.load_task`). Files in TRL's layout
(no ``objective`` column, or conversational messages) are read by the ``trl`` source.
"""

from __future__ import annotations

from pathlib import Path

from moalign.config import ConfigError
from moalign.data.io import read_table
from moalign.data.schema import ScoredSet
from moalign.data.sources.base import Collector, Source, SourceData
from moalign.data.templates import get_template
from moalign.data.validate import RawTable, _text_column, pairs_from_table, scored_from_table

TRL_HINT = "this looks like TRL's preference format: set task.source: trl (see docs/concepts/data.md)"


def read(path: str, split: str, max_samples: int | None = None, template: str | None = None) -> SourceData:
    folder = Path(path)
    if folder.is_dir() and (folder / "dataset_dict.json").is_file():
        folder = folder / split
    table = _formatted(_head(read_table(folder), max_samples), template)
    if "chosen" in table.columns or "rejected" in table.columns:
        return _from_pairs(table)
    if "response" in table.columns:
        scored = scored_from_table(table)
        return SourceData(responses=scored, pairs=None, prompts=list(dict.fromkeys(scored.prompts)))
    return _from_prompts(table)


def _formatted(table: RawTable, template: str | None) -> RawTable:
    """The table with ``template`` applied to its text prompts (checked later, row by row, if not text)."""
    if "chosen" in table.columns and "objective" not in table.columns:
        raise table.error(f"a pairs file without an 'objective' column; {TRL_HINT}", field="objective")
    if any(isinstance(v, list) for name in ("prompt", "chosen", "rejected") for v in table.columns.get(name, [])):
        raise table.error(f"conversational rows (lists of messages); {TRL_HINT}")
    if template is None or "prompt" not in table.columns:
        return table
    try:
        fmt = get_template(template)
    except ValueError as err:
        raise ConfigError(f"task.prompt_template: {err}") from None
    prompts = [fmt.format(v) if isinstance(v, str) else v for v in table.columns["prompt"]]
    return RawTable(table.source, {**table.columns, "prompt": prompts}, table.rows)


def _head(table: RawTable, n: int | None) -> RawTable:
    if n is None or n >= len(table):
        return table
    return RawTable(table.source, {k: v[:n] for k, v in table.columns.items()}, table.rows[:n])


def _from_pairs(table: RawTable) -> SourceData:
    pairs = pairs_from_table(table)
    out = Collector()
    for i, (prompt, chosen, rejected) in enumerate(zip(pairs.prompts, pairs.chosen, pairs.rejected)):
        out.response(prompt, chosen, f"{pairs.ids[i]}:chosen")
        out.response(prompt, rejected, f"{pairs.ids[i]}:rejected")
        out.golden.setdefault(prompt, chosen)
    return out.result(pairs=pairs)


def _from_prompts(table: RawTable) -> SourceData:
    prompts = _text_column(table, "prompt")
    golden = dict(zip(prompts, _text_column(table, "golden"))) if "golden" in table.columns else {}
    empty = ScoredSet(prompts=[], responses=[], scores=[], objectives=[])
    return SourceData(responses=empty, pairs=None, prompts=list(dict.fromkeys(prompts)), golden=golden)


SOURCE = Source(
    name="moalign", hub_id="", objectives=(), default_template=None, reader=read,
)
