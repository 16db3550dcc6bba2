"""Read chosen columns of a CSV/TSV/JSONL/Parquet file as strings, remembering where each row came from.

Everything is read as text (no dtype guessing, so the id ``00123`` keeps its zeros; missing values become
``""``) and every row carries its source position in the ``_line`` column, so later checks can report the
exact line of a bad value. The frame's ``attrs`` hold ``path`` and ``unit`` (``"line"``, or ``"row"`` for
Parquet, which has no lines).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import IO

import pandas as pd

from harnesslm.data.errors import DataError

LINE_COLUMN = "_line"
FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_DELIMITERS = {"csv": ",", "tsv": "\t"}

# Product descriptions can exceed the csv module's default 128 KiB field limit; pandas has no such limit.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


def read_table(path: str | PathLike[str], columns: Sequence[str], fmt: str | None = None) -> pd.DataFrame:
    """Read ``columns`` of ``path`` as strings, plus ``_line`` (source line, or row number for Parquet).

    ``fmt`` is one of ``csv``, ``tsv``, ``jsonl``, ``parquet``; when None it is guessed from the suffix
    (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.parquet``; text formats may end in ``.gz``).
    Raises DataError for a missing or empty file, a missing column, malformed content or unknown format.
    """
    path = Path(path)
    if not path.is_file():
        reason = "is a directory, not a file" if path.is_dir() else "file not found"
        raise DataError(reason, path=path)
    fmt = _resolve_format(path, fmt)
    wanted = list(dict.fromkeys(columns))
    data = _read_parquet(path, wanted) if fmt == "parquet" else _read_text(path, wanted, fmt)
    _refuse_nul_bytes(data, path, "row" if fmt == "parquet" else "line")
    frame = pd.DataFrame(data)
    frame.attrs.update(path=path, unit="row" if fmt == "parquet" else "line")
    return frame


def _resolve_format(path: Path, fmt: str | None) -> str:
    """The format forced by ``fmt``, or guessed from the file name."""
    if fmt is not None:
        key = fmt.lower().lstrip(".")
        key = {"ndjson": "jsonl", "pq": "parquet"}.get(key, key)
        if key not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; supported formats: {', '.join(FORMATS)}", path=path)
        return key
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
        if suffixes and _SUFFIXES.get(suffixes[-1]) == "parquet":
            suffixes = []  # parquet compresses internally; a gzipped parquet file is not something we read
    guessed = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if guessed is None:
        raise DataError(
            f"cannot tell the format from the file name; supported formats: {', '.join(FORMATS)} "
            f"(suffixes {', '.join(_SUFFIXES)}, plus .gz for text formats); pass the format explicitly",
            path=path,
        )
    return guessed


def _open_text(path: Path) -> IO[str]:
    """Open as UTF-8 text (a BOM is tolerated), transparently gunzipping ``*.gz``."""
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _read_text(path: Path, columns: list[str], fmt: str) -> dict[str, list]:
    """Read a text format, turning decoding and gzip problems into DataError."""
    try:
        with _open_text(path) as handle:
            if fmt == "jsonl":
                return _read_jsonl(handle, path, columns)
            return _read_delimited(handle, path, columns, fmt)
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 text ({exc.reason}); save the file as UTF-8", path=path) from None
    except (OSError, EOFError) as exc:  # e.g. a truncated or non-gzip ``.gz`` file
        raise DataError(f"cannot read the file: {exc}", path=path) from None


MAX_QUOTED = 80
"""Characters of a user's value echoed in an error: a 5 MB one-line file must not give a 5 MB message."""


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _missing_column_error(path: Path, missing: list[str], available: Sequence[str]) -> DataError:
    names = ", ".join(repr(clip(c)) for c in missing)
    label = "column" if len(missing) == 1 else "columns"
    there = clip(", ".join(available)) if available else "(none)"
    return DataError(f"missing {label} {names}; available columns: {there}", path=path)


def _refuse_nul_bytes(data: dict[str, list], path: Path, unit: str) -> None:
    """A NUL byte is never text a user meant (a binary file, or a broken export): say where it is."""
    positions = data.get(LINE_COLUMN) or list(range(1, len(next(iter(data.values()), [])) + 1))
    for name, values in data.items():
        if name == LINE_COLUMN:
            continue
        for position, value in zip(positions, values, strict=False):
            if "\x00" in value:
                where = {"line": position} if unit == "line" else {"row": position}
                raise DataError(
                    "holds a NUL byte (\\x00): is this a binary file, or a broken export? Remove the NUL bytes",
                    path=path,
                    field=name,
                    **where,
                )


def _refuse_duplicate_columns(path: Path, names: list[str], columns: list[str]) -> None:
    """A used column named twice would be read from its first position silently: refuse it, naming both."""
    for column in columns:
        positions = [i + 1 for i, name in enumerate(names) if name == column]
        if len(positions) > 1:
            where = " and ".join(str(p) for p in positions)
            raise DataError(
                f"the header names column {clip(column)!r} {len(positions)} times (positions {where}); "
                "rename or drop the extra ones",
                path=path,
                line=1,
            )


SWALLOWED_ROWS = 2
"""Row-shaped lines inside one quoted value from which an unclosed quote is assumed."""


def _swallowed_rows(value: str, delimiter: str, width: int) -> int:
    """How many lines inside one quoted field look like whole rows of the file (an unclosed quote's sign).

    A legitimate multi-line description holds prose; a quote left open makes the csv module read on, so the
    following rows land inside one field, each still carrying a row's worth of delimiters.
    """
    if "\n" not in value or width < 2:
        return 0
    rows = sum(1 for line in value.splitlines()[1:] if line.count(delimiter) >= width - 1)
    return rows if rows >= SWALLOWED_ROWS else 0  # one line with a comma is prose; several are rows


def _read_delimited(handle: IO[str], path: Path, columns: list[str], fmt: str) -> dict[str, list]:
    """CSV/TSV via the csv module, whose ``line_num`` gives physical lines even for multi-line fields."""
    reader = csv.reader(handle, delimiter=_DELIMITERS[fmt])
    try:
        header = next(reader, None)
        while header is not None and not header:  # blank lines before the header
            header = next(reader, None)
    except csv.Error as exc:
        raise DataError(f"malformed {fmt.upper()}: {exc}", path=path, line=reader.line_num) from None
    if header is None:
        raise DataError("file is empty", path=path)
    names = [name.strip() for name in header]
    missing = [c for c in columns if c not in names]
    if missing:
        raise _missing_column_error(path, missing, names)
    _refuse_duplicate_columns(path, names, columns)
    indices = [names.index(c) for c in columns]
    width = len(names)
    values: list[list[str]] = [[] for _ in columns]
    lines: list[int] = []
    start = reader.line_num + 1  # first physical line of the next record
    try:
        for record in reader:
            if record:  # the csv module yields [] for blank lines
                if len(record) > width:
                    raise DataError(
                        f"{len(record)} fields but the header has {width}; "
                        f"is a value with a {_describe(_DELIMITERS[fmt])} missing its quotes?",
                        path=path,
                        line=start,
                    )
                for field, (column, index) in zip(columns, zip(values, indices, strict=True), strict=True):
                    value = record[index] if index < len(record) else ""
                    swallowed = _swallowed_rows(value, _DELIMITERS[fmt], width)
                    if swallowed:
                        raise DataError(
                            f"a quote opened on this line is not closed until line {reader.line_num}: "
                            f"{swallowed} following row(s) were read into this one value. Close or escape "
                            f'the quote (a literal quote inside a quoted value is written twice: "")',
                            path=path,
                            line=start,
                            field=field,
                        )
                    column.append(value)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed {fmt.upper()}: {exc}", path=path, line=start) from None
    if not lines:
        raise DataError("no data rows (only a header)", path=path)
    return {**dict(zip(columns, values, strict=True)), LINE_COLUMN: lines}


def _describe(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else f"{delimiter!r}"


def _read_jsonl(handle: IO[str], path: Path, columns: list[str]) -> dict[str, list]:
    """One JSON object per line; blank lines are skipped; a key absent on a line reads as ``""``."""
    values: list[list[str]] = [[] for _ in columns]
    lines: list[int] = []
    seen_keys: dict[str, None] = {}
    found = dict.fromkeys(columns, False)
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"malformed JSON: {exc.msg} (column {exc.colno})"
            raise DataError(reason, path=path, line=number) from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", path=path, line=number)
        seen_keys.update(dict.fromkeys(record))
        for name, column in zip(columns, values, strict=True):
            value = record.get(name)
            if name in record:
                found[name] = True
            column.append(_json_to_str(value, path, number, name))
        lines.append(number)
    if not lines:
        raise DataError("file is empty (no JSON objects)", path=path)
    missing = [c for c, ok in found.items() if not ok]
    if missing:
        raise _missing_column_error(path, missing, list(seen_keys))
    return {**dict(zip(columns, values, strict=True)), LINE_COLUMN: lines}


def _json_to_str(value: object, path: Path, line: int, field: str) -> str:
    """A scalar JSON value as the string a CSV cell would hold; null → ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    reason = f"expected a string or number, got a JSON {type(value).__name__}"
    raise DataError(reason, path=path, line=line, field=field)


def _read_parquet(path: Path, columns: list[str]) -> dict[str, list]:
    """Parquet via pyarrow; values are cast to strings, nulls become ``""``; positions are row numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file ({exc})", path=path) from None
    available = parquet.schema_arrow.names
    missing = [c for c in columns if c not in available]
    if missing:
        raise _missing_column_error(path, missing, available)
    table = parquet.read(columns=columns)
    if table.num_rows == 0:
        raise DataError("no rows", path=path)
    data: dict[str, list] = {}
    for name in columns:
        column = table.column(name)
        try:
            as_text = pc.cast(column, pa.string())
        except pa.ArrowException as exc:
            raise DataError(f"cannot read as text ({column.type}): {exc}", path=path, field=name) from None
        data[name] = pc.fill_null(as_text, "").to_pylist()
    data[LINE_COLUMN] = list(range(1, table.num_rows + 1))
    return data
