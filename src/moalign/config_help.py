"""Config dataclasses described for people: every field's dotted key, type, default and meaning.

``moalign train METHOD --help`` prints these rows. A field's meaning is the ``# ...`` comment at the end of its
line in the dataclass's source, or the comment lines right above it (read with :mod:`tokenize`, so a ``#``
inside a string is not one); a field without a comment gets none. Nested config sections are walked.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class FieldRow:
    key: str  # dotted, as in an override: method.train.learning_rate
    type: str
    default: str  # as YAML writes it
    comment: str = ""


def field_rows(cls: type, prefix: str, *, instance: Any = None) -> list[FieldRow]:
    """One row per leaf field of config dataclass ``cls`` (nested sections walked), keys under ``prefix``;
    defaults read from ``instance`` (default: ``cls()``)."""
    instance = cls() if instance is None else instance
    comments = field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        value, key = getattr(instance, f.name), f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            rows += field_rows(type(value), key, instance=value)
        else:
            rows.append(FieldRow(key, _type_name(f.type), show_value(value), comments.get(f.name, "")))
    return rows


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment on its line (or the comment lines just above it) in ``cls``'s source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    comments, above, pending_name = {}, [], None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if pending_name is not None:  # the comment at the end of a field's line
                comments[pending_name] = text
                pending_name = None
            else:
                above.append(text)
        elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names and tok.line.lstrip().startswith(
                f"{tok.string}:"):
            pending_name = tok.string
            if above:
                comments[tok.string] = " ".join(above)
            above = []
        elif tok.type in (tokenize.NEWLINE, tokenize.NL):
            if tok.type == tokenize.NEWLINE:
                pending_name = None
            if tok.type == tokenize.NL and tok.line.strip() == "":
                above = []
    return comments


def show_value(value: Any) -> str:
    """A value as YAML writes it on one line (``null``, ``true``, ``[a, b]``, ``0.0001``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def format_rows(rows: list[FieldRow], changed: dict[str, str] | None = None, changed_by: str = "") -> str:
    """Aligned lines ``key  type  default  comment``; ``changed`` (key -> value) notes where ``changed_by``
    sets a field otherwise."""
    changed = changed or {}
    width_key = min(max((len(r.key) for r in rows), default=0), 44)
    width_type = min(max((len(r.type) for r in rows), default=0), 24)
    lines = []
    for r in rows:
        note = [r.comment] if r.comment else []
        if r.key in changed and changed[r.key] != r.default:
            note.append(f"[{changed_by}: {changed[r.key]}]")
        lines.append(f"  {r.key:<{width_key}}  {r.type:<{width_type}}  {r.default}"
                     + (f"  # {' '.join(note)}" if note else ""))
    return "\n".join(lines)


def flat_keys(data: Any, prefix: str) -> dict[str, Any]:
    """A nested mapping as dotted keys: ``{"train": {"lr": 1}}`` under ``method`` -> ``{"method.train.lr": 1}``."""
    if not isinstance(data, dict) or not data:
        return {prefix: data}
    return {k: v for key, value in data.items() for k, v in flat_keys(value, f"{prefix}.{key}").items()}


def _type_name(hint: Any) -> str:
    return hint if isinstance(hint, str) else getattr(hint, "__name__", str(hint))
