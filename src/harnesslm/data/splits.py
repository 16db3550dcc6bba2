"""Split judgments into train/validation/test by query, so no query's labels leak across splits.

Each query's split comes from a hash of (seed, query) mapped into [0, 1), so it does not depend on row
order or on which other queries exist: adding data never moves an existing query. Only on tiny data, when a
split with a positive fraction would be empty, the nearest query (in hash space) is moved into it.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence

import pandas as pd

SPLITS = ("train", "validation", "test")


def queries_of(frame: pd.DataFrame) -> list[str]:
    """The distinct queries of a judgments frame, in first-seen order."""
    return list(dict.fromkeys(frame["query"]))


def split_by_query(
    judgments: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Rows of ``judgments`` grouped into ``train``/``validation``/``test`` by their ``query`` column.

    ``fractions`` (non-negative, summing to 1) are the expected shares of queries per split. When there
    are at least as many queries as positive fractions, every split with a positive fraction is non-empty.
    """
    bounds = _bounds(fractions)
    queries = queries_of(judgments)
    points = {q: _hash_point(seed, q) for q in queries}
    assignment = {q: _split_of(u, bounds, fractions) for q, u in points.items()}
    _fill_empty_splits(assignment, points, bounds, fractions)
    labels = judgments["query"].map(assignment)
    return {name: judgments.loc[labels == name].reset_index(drop=True) for name in SPLITS}


def _bounds(fractions: tuple[float, float, float]) -> list[tuple[float, float]]:
    """Validate ``fractions`` and return each split's [low, high) interval of hash points."""
    if len(fractions) != len(SPLITS):
        raise ValueError(f"fractions must be 3 values (train, validation, test), got {fractions!r}")
    if any(not math.isfinite(f) or f < 0 for f in fractions):
        raise ValueError(f"fractions must be finite and non-negative, got {fractions!r}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(fractions):g})")
    bounds, low = [], 0.0
    for fraction in fractions:
        bounds.append((low, low + fraction))
        low += fraction
    return bounds


def _hash_point(seed: int, query: str) -> float:
    """A uniform point in [0, 1) determined only by the seed and the query."""
    digest = hashlib.blake2b(f"{seed}\x00{query}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _split_of(point: float, bounds: list[tuple[float, float]], fractions: tuple[float, ...]) -> str:
    """The split whose interval holds ``point``; rounding leftovers near 1 go to the last positive split."""
    for name, (low, high), fraction in zip(SPLITS, bounds, fractions, strict=True):
        if fraction > 0 and low <= point < high:
            return name
    return next(name for name, f in zip(reversed(SPLITS), reversed(fractions), strict=True) if f > 0)


def _fill_empty_splits(
    assignment: dict[str, str],
    points: dict[str, float],
    bounds: list[tuple[float, float]],
    fractions: tuple[float, ...],
) -> None:
    """Give each empty split with a positive fraction the closest query from a split that can spare one."""
    wanted = [name for name, f in zip(SPLITS, fractions, strict=True) if f > 0]
    if len(assignment) < len(wanted):
        return
    for name, (low, high), fraction in zip(SPLITS, bounds, fractions, strict=True):
        sizes = Counter(assignment.values())
        if fraction == 0 or sizes[name] > 0:
            continue
        donors = [q for q, split in assignment.items() if sizes[split] > 1]
        chosen = min(donors, key=lambda q: (max(low - points[q], points[q] - high, 0.0), q))
        assignment[chosen] = name


def limit_queries(frame: pd.DataFrame, n: int | None, seed: int = 0) -> pd.DataFrame:
    """The rows of at most ``n`` of the frame's queries, drawn by a seeded hash of the query (not by row).

    Used to simulate a small query log from a large one: the same seed keeps the same queries, and a larger
    ``n`` keeps a superset of a smaller one.
    """
    queries = queries_of(frame)
    if n is None or n >= len(queries):
        return frame
    kept = set(sorted(queries, key=lambda q: _hash_point(seed + 7919, q))[:n])
    return frame.loc[frame["query"].isin(kept)].reset_index(drop=True)


def halves(queries: Sequence[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """Queries split in two by a hash of each (drawn apart from the train/validation/test split): choices
    (checkpoints, tuned settings) are made on the first half and figures reported on the second, so nothing
    is scored on the queries it was chosen on (a best-of-N score is biased upward)."""
    choose: list[str] = []
    report: list[str] = []
    for query in queries:
        (choose if _hash_point(seed + HALVES_SALT, query) < 0.5 else report).append(query)
    return choose, report


HALVES_SALT = 7_919
"""Added to the seed so the halves are independent of the split that made the validation queries."""
