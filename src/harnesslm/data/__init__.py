"""Loading a user's catalog, relevance judgments and queries, with errors that point at the bad line."""

from harnesslm.data.errors import DataError
from harnesslm.data.loading import load_catalog, load_judgments, load_queries
from harnesslm.data.readers import read_table
from harnesslm.data.splits import limit_queries, queries_of, split_by_query
from harnesslm.data.text import normalize_query, normalize_text

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
