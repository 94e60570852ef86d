"""Adapters from public preference datasets to moalign records, one module per dataset.

``SOURCES`` maps a source name to its :class:`Source`; Hub ids work as aliases
(``"Anthropic/hh-rlhf"`` = ``"hh-rlhf"``). :func:`load_source` is the one entry point:
it opens the data through ``datasets.load_dataset`` (Hub id, local folder or file) and runs the adapter.
"""

from __future__ import annotations

import difflib

from moalign.data.sources import helpsteer, hh_rlhf, local, pku_saferlhf, summarize, trl, ultrafeedback
from moalign.data.sources.base import Source, SourceData, open_split, resolve_options, split_spec

SOURCES: dict[str, Source] = {
    m.SOURCE.name: m.SOURCE for m in (hh_rlhf, pku_saferlhf, ultrafeedback, helpsteer, summarize, local, trl)
}
ALIASES: dict[str, str] = {s.hub_id: s.name for s in SOURCES.values() if s.hub_id} | {
    "PKU-Alignment/PKU-SafeRLHF-10K": "pku-saferlhf",
    "PKU-Alignment/PKU-SafeRLHF-30K": "pku-saferlhf",
    "nvidia/HelpSteer2": "helpsteer",
    "local": "moalign",
}


def get_source(name: str) -> Source:
    """The adapter called ``name`` (a source name or a Hub id alias); a typo gets a did-you-mean."""
    key = ALIASES.get(name, name)
    if key in SOURCES:
        return SOURCES[key]
    known = list(SOURCES) + list(ALIASES)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown data source {name!r}; {hint}known sources: {', '.join(SOURCES)}")


def load_source(
    source: str, spec: str, split: str = "train", max_samples: int | None = None, template: str | None = None,
    *, objective: str | None = None, objectives: list[str] | None = None, chat=None,
) -> SourceData:
    """Load ``spec`` (Hub id / folder / file, optional ``?key=value`` options) with adapter ``source``.

    ``max_samples`` keeps the first rows of the split (before any rows are dropped); ``template`` names
    the prompt template (None: the source's default; a ``template=`` option in the spec wins); a ``split=``
    option in the spec replaces ``split``. ``objective`` labels every pair of this spec (the key of a
    ``task.train_data`` mapping; only adapters with an ``objective`` option take one). Adapters that read
    chat data (``trl``) also get the task's ``objectives`` (None: test data, labels unchecked) and ``chat``
    (a :class:`moalign.data.chat.ChatRenderer`, or None for ``chat_template: none``).
    """
    adapter = get_source(source)
    path, loader, options = split_spec(spec)
    template = options.pop("template", template)
    split = options.pop("split", split)
    if objective is not None:
        if "objective" not in adapter.options:
            raise ValueError(f"source {adapter.name!r} labels its pairs itself and takes no objective per "
                             "dataset; give task.train_data as one dataset, or use source: trl")
        if options.get("objective", objective) != objective:
            raise ValueError(f"{spec}: objective={options['objective']!r} in the spec but the data is given for "
                             f"objective {objective!r} (its task.train_data key); drop one of them")
        options["objective"] = objective
    if adapter.reader is not None:
        resolve_options(adapter, options)  # rejects unknown options
        return adapter.reader(path, split, max_samples, template)
    if "data_dir" in adapter.options and "data_dir" in loader:
        options["data_dir"] = loader["data_dir"]
    dataset = open_split(path, split, loader, adapter.config)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    extra = {"objectives": objectives, "chat": chat} if adapter.task_aware else {}
    return adapter.build(dataset, template=template, spec=spec, **resolve_options(adapter, options), **extra)


__all__ = ["SOURCES", "Source", "SourceData", "get_source", "load_source"]
