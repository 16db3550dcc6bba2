"""Loading a user's catalog, relevance judgments and queries, with errors that point at the bad line.

Names load on first use, so ``harnesslm.data.errors`` (which the CLI needs at start-up) does not pull in pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DataError": "harnesslm.data.errors",
    "load_catalog": "harnesslm.data.loading",
    "load_judgments": "harnesslm.data.loading",
    "load_queries": "harnesslm.data.loading",
    "read_table": "harnesslm.data.readers",
    "limit_queries": "harnesslm.data.splits",
    "queries_of": "harnesslm.data.splits",
    "split_by_query": "harnesslm.data.splits",
    "normalize_query": "harnesslm.data.text",
    "normalize_text": "harnesslm.data.text",
}
__all__ = [
    "DataError",
    "limit_queries",
    "load_catalog",
    "load_judgments",
    "load_queries",
    "normalize_query",
    "normalize_text",
    "queries_of",
    "read_table",
    "split_by_query",
]

if TYPE_CHECKING:
    from harnesslm.data.errors import DataError
    from harnesslm.data.loading import load_catalog, load_judgments, load_queries
    from harnesslm.data.readers import read_table
    from harnesslm.data.splits import limit_queries, queries_of, split_by_query
    from harnesslm.data.text import normalize_query, normalize_text


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harnesslm.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
