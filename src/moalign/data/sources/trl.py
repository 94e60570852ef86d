"""``trl``: data in TRL's preference format (https://huggingface.co/docs/trl/dataset_formats).

Read from a JSONL/Parquet file, a ``save_to_disk`` folder (a ``DatasetDict`` is read at its split) or a Hub id,
through ``datasets``. Accepted rows, told apart with TRL's own helpers (``is_conversational``,
``maybe_extract_prompt``):

* *standard*: ``prompt``, ``chosen``, ``rejected`` strings. The prompt is used as stored, or put into
  ``task.prompt_template`` when one is set (``hh``: ``"\\n\\nHuman: {prompt}\\n\\nAssistant:"``);
* *conversational*: each field a list of ``{"role", "content"}`` messages; the prompt is rendered with the
  policy's chat template (:mod:`moalign.data.chat`), the responses are the assistant turns' content (plain
  text). A text ``prompt_template`` cannot apply to them and is refused;
* *implicit prompt*: only ``chosen`` and ``rejected``, whole conversations (or strings) sharing a prefix;
  TRL's ``extract_prompt`` splits off the shared prefix as the prompt;
* *prompt-only* (``prompt``, optional ``completion`` = the reference answer): test prompts.

Objectives: an ``objective`` column labels each pair; otherwise the ``objective`` option (the key of a
``task.train_data`` mapping) or, for a task with a single objective, that objective. Both responses of a
pair become (unscored) responses; golden = the first chosen response of each prompt. Skipped (counted):
pairs with identical or empty sides, rows whose conversations share no prompt.
"""

from __future__ import annotations

import difflib
from typing import Any

from moalign.config import ConfigError
from moalign.data.schema import DataValidationError
from moalign.data.sources.base import Collector, Source, SourceData, require_columns
from moalign.data.templates import get_template

FIELDS = ("prompt", "chosen", "rejected")


def build(dataset, template: str | None, spec: str, objective: str | None = None, *,
          objectives: list[str] | None = None, chat=None) -> SourceData:
    """``objectives``: the task's (labels are checked against them); None when loading test prompts."""
    from trl.data_utils import maybe_extract_prompt

    columns = list(dataset.column_names)
    if "chosen" not in columns and "rejected" not in columns and "prompt" in columns:
        return _prompt_only(dataset, template, spec, chat)
    require_columns(dataset, ["chosen", "rejected"], "trl", spec)
    rows = _Rows(spec, template, chat)
    out = Collector()
    for i, row in enumerate(dataset):
        for side in ("chosen", "rejected"):
            if row[side] is None:
                raise DataValidationError("missing or null; every pair needs both sides", file=spec, row=i + 1,
                                          field=side)
        example = maybe_extract_prompt({k: row[k] for k in FIELDS if k in row and row[k] is not None})
        if not example["prompt"]:
            out.drop("empty prompt (or chosen and rejected share no prefix)")
            continue
        prompt = rows.prompt(example["prompt"], i)
        chosen, rejected = (rows.response(example[side], i, side) for side in ("chosen", "rejected"))
        label = _label(row, objective, objectives, i, spec)
        for side, text in (("chosen", chosen), ("rejected", rejected)):
            if text.strip():
                out.response(prompt, text, f"{i}:{side}")
        if not chosen.strip() or not rejected.strip():
            out.drop(f"{label}: empty chosen or rejected response")
            continue
        out.golden.setdefault(prompt, chosen)
        out.pair(prompt, chosen, rejected, label, str(i))
    if not out.pair_rows:
        raise DataValidationError(f"no usable preference pairs (skipped: {out.dropped or 'no rows'})", file=spec)
    return out.result()


def _prompt_only(dataset, template: str | None, spec: str, chat) -> SourceData:
    rows = _Rows(spec, template, chat)
    out, prompts = Collector(), []
    for i, row in enumerate(dataset):
        prompts.append(rows.prompt(row["prompt"], i))
        if row.get("completion") is not None:
            out.golden.setdefault(prompts[-1], rows.response(row["completion"], i, "completion"))
    data = out.result()
    data.prompts = list(dict.fromkeys(prompts))
    return data


class _Rows:
    """Turns one row's prompt and responses into text: the template or the chat template, checked."""

    def __init__(self, spec: str, template: str | None, chat):
        try:
            self.template = None if template is None else get_template(template)
        except ValueError as err:
            raise ConfigError(f"task.prompt_template: {err}") from None
        self.spec, self.chat, self.template_name = spec, chat, template

    def prompt(self, value: Any, i: int) -> str:
        if isinstance(value, str):
            return value if self.template is None else self.template.format(value)
        messages = _messages(value, self.spec, i, "prompt")
        if self.template is not None and self.template.text != "{prompt}":
            raise ConfigError(f"task.prompt_template={self.template_name!r} is a text template, but {self.spec} is "
                              "conversational (lists of messages), which the chat template renders; remove "
                              "task.prompt_template (set it to null) or write the prompts as plain strings")
        if self.chat is None:
            raise ConfigError(f"{self.spec} is conversational but task.chat_template='none'; set "
                              "task.chat_template=auto (the policy's tokenizer) or to a tokenizer with a chat template")
        return self.chat.prompt(messages)

    def response(self, value: Any, i: int, side: str) -> str:
        """A string as stored; a conversation's single assistant turn as its content."""
        if isinstance(value, str):
            return value
        messages = _messages(value, self.spec, i, side)
        if len(messages) != 1 or messages[0]["role"] != "assistant" or not isinstance(messages[0]["content"], str):
            roles = [m["role"] for m in messages]
            raise DataValidationError(
                f"expected one assistant message with text content after the prompt, got roles {roles}; moalign "
                "trains on a prompt and one plain-text response: put earlier turns in the prompt", file=self.spec,
                row=i + 1, field=side)
        return messages[0]["content"]


def _messages(value: Any, spec: str, i: int, side: str) -> list[dict]:
    from trl.data_utils import is_conversational

    ok = isinstance(value, list) and bool(value) and is_conversational({side: value}) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value)
    if not ok:
        raise DataValidationError(f"expected text or a list of {{'role', 'content'}} messages, got {value!r:.80}",
                                  file=spec, row=i + 1, field=side)
    return value


def _label(row: dict, objective: str | None, objectives: list[str] | None, i: int, spec: str) -> str:
    """The pair's objective: the ``objective`` column, else the option, else the task's only objective."""
    label = row.get("objective")
    if label is not None and (not isinstance(label, str) or not label):
        raise DataValidationError(f"expected an objective name, got {label!r}", file=spec, row=i + 1,
                                  field="objective")
    if label is not None and objective is not None and label != objective:
        raise DataValidationError(f"objective {label!r} but this data is given for objective {objective!r} "
                                  "(its task.train_data key); fix the column or the key", file=spec, row=i + 1,
                                  field="objective")
    label = label or objective or (objectives[0] if objectives and len(objectives) == 1 else None)
    if label is None:
        if objectives is None:
            return "unlabelled"  # test prompts need no objective
        raise DataValidationError(
            "no objective for the pairs: add an 'objective' column, or give task.train_data as a mapping "
            "{objective: data}, e.g. {helpful: data/helpful.jsonl, harmless: data/harmless.jsonl}",
            file=spec, row=i + 1, field="objective")
    if objectives is not None and label not in objectives:
        close = difflib.get_close_matches(label, objectives, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataValidationError(f"objective {label!r} is not one of task.objectives={objectives}; {hint}fix the "
                                  "label or add the objective to the task", file=spec, row=i + 1, field="objective")
    return label


SOURCE = Source(
    name="trl", hub_id="", objectives=(), default_template=None, build=build, options={"objective": None},
    task_aware=True,
)
