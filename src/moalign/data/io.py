"""Read and write scored responses and preference pairs as JSONL, Parquet or ``datasets`` folders.

The on-disk layout is flat, one column per field, so it round-trips through all three formats unchanged and
opens in any tool (pandas, DuckDB, the Hub viewer):

* scored responses: ``id``, ``prompt``, ``response``, then ``score.<objective>`` for each objective, in order.
* preference pairs: ``id``, ``prompt``, ``chosen``, ``rejected``, ``objective``, then
  ``chosen_score.<objective>`` and ``rejected_score.<objective>`` when the scores are known (null = unknown).

The format follows the path: ``.jsonl``/``.json`` -> JSON lines, ``.parquet`` -> Parquet, anything else -> a
folder written by ``datasets.Dataset.save_to_disk``. An in-memory ``datasets.Dataset`` can be passed to the
loaders directly. Every load is validated (see :mod:`moalign.data.validate`); every write is atomic
(:mod:`moalign.io_utils`). Loading never modifies the user's file, and saving never replaces an existing file
or folder unless ``overwrite=True`` is passed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from moalign.data.schema import DataValidationError, PairSet, ScoredSet
from moalign.data.validate import (
    SCORE_PREFIX,
    RawTable,
    check_objective_names,
    pairs_from_table,
    scored_from_table,
)
from moalign.io_utils import atomic_dir, atomic_file, atomic_write_text, refuse_existing

JSON_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_COLUMNS = ("id", "prompt", "response", "chosen", "rejected", "objective")


# ------------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------------


def load_scored(path: Any, objectives: list[str] | None = None) -> ScoredSet:
    """Load scored responses from a file, a dataset folder or a ``datasets.Dataset``.

    ``objectives`` (optional) names the objectives expected, in the order the score matrix should have;
    a missing or misspelt ``score.<objective>`` column then fails with a did-you-mean. Without it, every
    ``score.*`` column is an objective, in file order. Raises :class:`DataValidationError` on bad data.
    """
    objectives = check_objective_names(objectives)  # a wrong argument fails before any file is read
    return scored_from_table(read_table(path), objectives)


def load_pairs(path: Any, objectives: list[str] | None = None) -> PairSet:
    """Load preference pairs from a file, a dataset folder or a ``datasets.Dataset``.

    With ``objectives``, every pair's ``objective`` must be one of them (use :meth:`PairSet.for_objective`
    to keep a subset), and known scores are ordered by them. A file without an ``objective`` column is
    accepted when exactly one objective is given: every pair is then labelled with it.
    """
    objectives = check_objective_names(objectives)
    return pairs_from_table(read_table(path), objectives)


def save_scored(scored: ScoredSet, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``scored`` to ``path`` (format from the suffix, see the module docstring); returns the path.

    Scores must be finite (a file that :func:`load_scored` would refuse is never written). An existing file
    or folder at ``path`` is refused with FileExistsError unless ``overwrite=True`` (then replaced atomically).
    """
    check_finite_scores(scored, path)
    return write_columns(scored_columns(scored), Path(path), overwrite=overwrite)


def check_finite_scores(scored: ScoredSet, path: str | Path) -> None:
    """Raise ValueError naming the first row and objective whose score is NaN or infinite."""
    bad = np.argwhere(~np.isfinite(scored.scores))
    if len(bad):
        i, j = bad[0]
        raise ValueError(f"cannot save {path}: the score of row {i} (id {scored.ids[i]!r}) for objective "
                         f"{scored.objectives[j]!r} is {scored.scores[i, j]}; scored files hold finite scores "
                         "(drop the row, or store unknown scores as pairs)")


def save_pairs(pairs: PairSet, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``pairs`` to ``path`` (format from the suffix); unknown scores are written as null.

    An existing file or folder at ``path`` is refused unless ``overwrite=True``, as in :func:`save_scored`.
    """
    return write_columns(pair_columns(pairs), Path(path), overwrite=overwrite)


def scored_to_dataset(scored: ScoredSet):
    """``scored`` as an in-memory ``datasets.Dataset`` in the on-disk column layout."""
    import datasets

    return datasets.Dataset.from_dict(scored_columns(scored))


def pairs_to_dataset(pairs: PairSet):
    """``pairs`` as an in-memory ``datasets.Dataset`` (columns ``prompt``/``chosen``/``rejected``, as TRL expects)."""
    import datasets

    return datasets.Dataset.from_dict(pair_columns(pairs))


# ------------------------------------------------------------------------------------------------------
# records <-> columns
# ------------------------------------------------------------------------------------------------------


def scored_columns(scored: ScoredSet) -> dict[str, list]:
    """The on-disk columns of a scored set (scores as Python floats)."""
    columns: dict[str, list] = {
        "id": [str(i) for i in scored.ids],
        "prompt": list(scored.prompts),
        "response": list(scored.responses),
    }
    for j, name in enumerate(scored.objectives):
        columns[SCORE_PREFIX + name] = [float(v) for v in scored.scores[:, j]]
    return columns


def pair_columns(pairs: PairSet) -> dict[str, list]:
    """The on-disk columns of a pair set; NaN (unknown) scores become None (null)."""
    columns: dict[str, list] = {
        "id": [str(i) for i in pairs.ids],
        "prompt": list(pairs.prompts),
        "chosen": list(pairs.chosen),
        "rejected": list(pairs.rejected),
        "objective": list(pairs.objective),
    }
    if pairs.chosen_scores is not None and pairs.rejected_scores is not None:
        for side, array in (("chosen", pairs.chosen_scores), ("rejected", pairs.rejected_scores)):
            for j, name in enumerate(pairs.objectives):
                columns[f"{side}_score.{name}"] = [None if math.isnan(v) else float(v) for v in array[:, j]]
    return columns


# ------------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------------


def file_format(path: Path) -> str:
    """'jsonl', 'parquet' or 'dataset' (a save_to_disk folder), from the path's suffix."""
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return "dataset"


def write_columns(columns: dict[str, list], path: Path, *, overwrite: bool = False) -> Path:
    """Write columns in the format named by ``path``; the target appears only once fully written.

    Columns other than the text and score columns of the layout (e.g. ``pareto_layer``) keep their own
    type. An existing file or folder at ``path`` is refused unless ``overwrite`` (see :mod:`moalign.io_utils`).
    """
    path = Path(path)
    refuse_existing(path, overwrite=overwrite)  # before the columns are converted
    kind = file_format(path)
    if kind == "jsonl":
        names = list(columns)
        n = len(next(iter(columns.values()))) if columns else 0
        lines = [json.dumps({k: columns[k][i] for k in names}, ensure_ascii=False) for i in range(n)]
        atomic_write_text(path, "".join(line + "\n" for line in lines), overwrite=overwrite)
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(_arrow_columns(columns))
        atomic_file(path, lambda tmp: pq.write_table(table, tmp), overwrite=overwrite)
    else:
        import datasets

        with atomic_dir(path, overwrite=overwrite) as tmp:
            datasets.Dataset.from_dict(columns).save_to_disk(str(tmp))
    return path


def _arrow_columns(columns: dict[str, list]) -> dict[str, Any]:
    """Typed Arrow arrays: score columns float64 (also when all null), layout text columns string (also when
    the set is empty); any other column is typed from its values."""
    import pyarrow as pa

    def kind(name: str):
        if "score." in name:
            return pa.float64()
        return pa.string() if name in TEXT_COLUMNS else None

    return {k: pa.array(v, type=kind(k)) for k, v in columns.items()}


# ------------------------------------------------------------------------------------------------------
# reading: everything becomes a RawTable (columns + the row number a user would look up)
# ------------------------------------------------------------------------------------------------------


def read_table(source: Any) -> RawTable:
    """Read a JSONL/JSON/Parquet file, a dataset folder or an in-memory ``datasets.Dataset``."""
    if not isinstance(source, (str, os.PathLike)):
        return _table_from_dataset(source, name=f"<in-memory {type(source).__name__}>")
    path = Path(source)
    if not path.exists():
        raise DataValidationError(
            "no such file or folder; pass a .jsonl, .json or .parquet file or a folder written by save_to_disk",
            file=str(path),
        )
    if path.is_dir():
        import datasets

        return _table_from_dataset(_single_split(datasets.load_from_disk(str(path)), path), name=str(path))
    kind = file_format(path)
    if kind == "jsonl":
        return _read_json(path)
    if kind == "parquet":
        return _read_parquet(path)
    raise DataValidationError(
        f"unknown file type {path.suffix!r}; use .jsonl, .json or .parquet (or a dataset folder)", file=str(path)
    )


def _single_split(data, path: Path):
    """A folder may hold a DatasetDict: use its only split, else ask for one."""
    import datasets

    if not isinstance(data, datasets.DatasetDict):
        return data
    splits = list(data.keys())
    if len(splits) == 1:
        return data[splits[0]]
    raise DataValidationError(
        f"the folder holds several splits ({', '.join(splits)}); pass the split folder, e.g. {path / splits[0]}",
        file=str(path),
    )


def _table_from_dataset(dataset, name: str) -> RawTable:
    if not hasattr(dataset, "column_names") or not hasattr(dataset, "to_dict"):
        raise TypeError(f"expected a path or a datasets.Dataset, got {type(dataset).__name__}")
    columns = dataset.to_dict()
    n = len(dataset)
    return RawTable(source=name, columns=columns, rows=list(range(1, n + 1)))


def _read_parquet(path: Path) -> RawTable:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataValidationError(f"not a readable Parquet file ({err})", file=str(path)) from err
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for name, values in columns.items():
        columns[name] = _decode_binary(values, path, name)
    return RawTable(source=str(path), columns=columns, rows=list(range(1, table.num_rows + 1)))


def _decode_binary(values: list, path: Path, name: str) -> list:
    """Binary Parquet columns hold bytes: decode them as UTF-8, naming the row and byte of a bad one."""
    if not any(isinstance(v, bytes) for v in values):
        return values
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataValidationError(
                    f"text is not valid UTF-8 (byte {err.start} of the value is 0x{v[err.start]:02x}); "
                    "re-encode the column as UTF-8",
                    file=str(path), row=i + 1, field=name,
                ) from err
        out.append(v)
    return out


def _read_json(path: Path) -> RawTable:
    """JSON lines (one object per line; blank lines skipped); a .json file may also be one array of objects."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = b" " * 3 + data[3:]  # a UTF-8 byte-order mark; keep offsets unchanged
    if path.suffix.lower() == ".json" and data.lstrip().startswith(b"["):
        return _read_json_array(path, data)
    objects, rows, offset = [], [], 0
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        start, offset = offset, offset + len(raw) + 1
        if not raw.strip():
            continue
        objects.append(_parse_line(path, raw, lineno, start))
        rows.append(lineno)
    return RawTable(source=str(path), columns=_columns_of(objects), rows=rows)


def _parse_line(path: Path, raw: bytes, lineno: int, start: int) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataValidationError(
            f"not valid UTF-8: byte 0x{raw[err.start]:02x} at byte offset {start + err.start} of the file "
            f"(column {err.start + 1} of the line); re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8",
            file=str(path), row=lineno,
        ) from err
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataValidationError(
            f"not valid JSON ({err.msg} at column {err.colno}); each line must be one JSON object such as "
            '{"prompt": "...", "response": "..."}',
            file=str(path), row=lineno,
        ) from err
    if not isinstance(obj, dict):
        raise DataValidationError(
            f"each line must be a JSON object with named fields, got a {type(obj).__name__}",
            file=str(path), row=lineno,
        )
    return obj


def _read_json_array(path: Path, data: bytes) -> RawTable:
    try:
        items = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataValidationError(
            f"not valid UTF-8: byte 0x{data[err.start]:02x} at byte offset {err.start}; re-save the file as UTF-8",
            file=str(path),
        ) from err
    except json.JSONDecodeError as err:
        raise DataValidationError(f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})",
                                  file=str(path)) from err
    for i, obj in enumerate(items):
        if not isinstance(obj, dict):
            raise DataValidationError(f"item {i + 1} of the array is a {type(obj).__name__}, not an object",
                                      file=str(path), row=i + 1)
    return RawTable(source=str(path), columns=_columns_of(items), rows=list(range(1, len(items) + 1)))


def _columns_of(objects: list[dict]) -> dict[str, list]:
    """Row objects -> columns (in first-seen key order); a key a row lacks is None in that row."""
    names: dict[str, None] = {}
    for obj in objects:
        names.update(dict.fromkeys(obj))
    return {name: [obj.get(name) for obj in objects] for name in names}
