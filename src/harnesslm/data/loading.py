"""Load a user's catalog, relevance judgments and query list into clean frames, or fail at the bad line.

Every check reports the first offending line (and how many more there are), so a user fixing a file sees
exactly where to look instead of a pandas traceback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence
from os import PathLike

import pandas as pd

from harnesslm.data.errors import DataError
from harnesslm.data.readers import LINE_COLUMN, read_table
from harnesslm.data.text import normalize_query, normalize_text

logger = logging.getLogger(__name__)

PathArg = str | PathLike[str]


def load_catalog(
    path: PathArg,
    id_column: str = "product_uid",
    text_column: str = "product_title",
    fmt: str | None = None,
    fields: Sequence[str] = (),
) -> pd.DataFrame:
    """Read the item catalog as ``item_id`` (string, stripped) and ``text`` (normalised), in file order.

    ``fields`` are extra columns kept under their own names, as normalised text (an empty cell is ``""``),
    for search filters and display; a missing one is a DataError naming the file and the column.
    Empty ids or texts are errors. Repeated ids are merged: exact repeats silently, an id repeated with a
    different text keeps its first row and logs one warning. ``attrs["stats"]`` holds ``rows_read``,
    ``duplicates_merged`` and ``conflicting_duplicates``.
    """
    fields = list(dict.fromkeys(fields))
    reserved = [f for f in fields if f in ("item_id", "text", id_column, text_column)]
    if reserved:
        raise DataError(
            f"catalog field {reserved[0]!r} is the id or text column (or a reserved name: item_id, text)",
            path=path,
        )
    raw = read_table(path, [id_column, text_column, *fields], fmt)
    ids = _stripped(raw[id_column])
    _reject(raw, [not i for i in ids], id_column, lambda _: "empty id")
    texts = [normalize_text(t) for t in raw[text_column]]
    _reject(raw, [not t for t in texts], text_column, lambda _: "empty text")

    frame = pd.DataFrame({"item_id": ids, "text": texts, **{f: [normalize_text(v) for v in raw[f]] for f in fields}})
    repeated = frame.duplicated("item_id", keep="first")
    exact = frame.duplicated(["item_id", "text"], keep="first")
    conflicting = int((repeated & ~exact).sum())
    if conflicting:
        example = frame.loc[repeated & ~exact, "item_id"].iloc[0]
        logger.warning(
            "%s: %d rows repeat an item id with a different text; kept the first row of each (e.g. id %r)",
            raw.attrs["path"],
            conflicting,
            example,
        )
    catalog = frame.loc[~repeated].reset_index(drop=True)
    catalog.attrs["stats"] = {
        "rows_read": len(raw),
        "duplicates_merged": int(repeated.sum()),
        "conflicting_duplicates": conflicting,
    }
    return catalog


def load_judgments(
    path: PathArg,
    item_ids: Collection[str] | None,
    query_column: str = "search_term",
    item_column: str = "product_uid",
    label_column: str = "relevance",
    fmt: str | None = None,
) -> pd.DataFrame:
    """Read graded relevance judgments as ``query`` (normalize_query), ``item_id`` and ``label`` (float).

    Empty queries or ids, labels that are not finite numbers and, when ``item_ids`` is given, ids missing
    from it are errors. Repeated (query, item) pairs, also ones equal only after normalisation, are merged
    into one row with the mean label. Rows keep first-seen order. ``attrs["stats"]`` holds ``rows_read``,
    ``duplicates_merged`` and ``queries``.
    """
    raw = read_table(path, [query_column, item_column, label_column], fmt)
    queries = [normalize_query(q) for q in raw[query_column]]
    _reject(raw, [not q for q in queries], query_column, lambda _: "empty query")
    ids = _stripped(raw[item_column])
    _reject(raw, [not i for i in ids], item_column, lambda _: "empty item id")
    if item_ids is not None:
        known = item_ids if isinstance(item_ids, (set, frozenset, dict)) else set(item_ids)
        unknown = [i not in known for i in ids]
        _reject(raw, unknown, item_column, lambda row: f"item id {ids[row]!r} is not in the catalog")
    labels = _parse_labels(raw, label_column)

    frame = pd.DataFrame({"query": queries, "item_id": ids, "label": labels})
    merged = frame.groupby(["query", "item_id"], sort=False, as_index=False)["label"].mean()
    merged.attrs["stats"] = {
        "rows_read": len(raw),
        "duplicates_merged": len(frame) - len(merged),
        "queries": int(merged["query"].nunique()),
    }
    return merged


def load_queries(path: PathArg, query_column: str = "search_term", fmt: str | None = None) -> list[str]:
    """Unique normalised queries in first-seen order; empty ones are skipped (a query list may have gaps)."""
    raw = read_table(path, [query_column], fmt)
    normalised = (normalize_query(q) for q in raw[query_column])
    return list(dict.fromkeys(q for q in normalised if q))


def _stripped(values: pd.Series) -> list[str]:
    """Ids with surrounding whitespace removed (``" 123"`` after a comma is the id ``123``)."""
    return [v.strip() for v in values]


def _parse_labels(raw: pd.DataFrame, column: str) -> list[float]:
    """Labels as floats; empty, non-numeric, NaN or infinite labels are errors."""
    labels: list[float] = []
    bad: list[bool] = []
    for text in raw[column]:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        labels.append(value)
        bad.append(not math.isfinite(value))

    def reason(index: int) -> str:
        text = raw[column].iloc[index]
        return "empty label" if not text.strip() else f"label {text!r} is not a finite number"

    _reject(raw, bad, column, reason)
    return labels


def _reject(raw: pd.DataFrame, bad: list[bool], field: str, reason: Callable[[int], str]) -> None:
    """Raise DataError at the first row flagged in ``bad``; ``reason`` gets that row's position."""
    if not any(bad):
        return
    first = bad.index(True)
    count = sum(bad)
    message = reason(first)
    if count > 1:
        message += f" ({count - 1} more {'row' if count == 2 else 'rows'} like this)"
    position = int(raw[LINE_COLUMN].iloc[first])
    unit = raw.attrs.get("unit", "line")
    raise DataError(
        message,
        path=raw.attrs.get("path"),
        line=position if unit == "line" else None,
        row=position if unit == "row" else None,
        field=field,
    )
