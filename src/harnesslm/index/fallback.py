"""An approximate (HNSW) index that hands a search to exact search where the graph would be wrong or slow.

HNSW answers a query in a fraction of a millisecond where a flat scan of a 50k-item catalog takes several,
at a small recall cost. Two cases break it, and both fall back to exact search over the same vectors (the
graph's own flat storage, so no second copy is kept):

- a selective filter: HNSW with an ``IDSelector`` walks the graph through items it may not return, so it
  slows down and can come back short when few items pass; below ``min_allowed_fraction`` of the catalog a
  scan of the allowed rows is both exact and fast;
- ``k`` above the graph's ``efSearch``: HNSW cannot return more candidates than it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harnesslm.index.item_index import IndexMeta, ItemIndex


@dataclass
class ExactFallbackIndex:
    """``ann`` (an HNSW :class:`ItemIndex`) with exact search for filtered and deep searches.

    ``recall`` is the graph's measured recall@k against exact search for the served queries, when known.
    Counts of each path are kept in ``searches`` (``ann`` / ``exact``) for ``/health``.
    """

    ann: ItemIndex
    recall: dict[str, float] | None = None
    min_allowed_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.ann.meta.kind != "hnsw":
            raise ValueError(f"the approximate index must be hnsw, got {self.ann.meta.kind}")
        self.exact = self.ann.exact_view()
        self.searches = {"ann": 0, "exact": 0}

    @property
    def item_ids(self) -> np.ndarray:
        return self.ann.item_ids

    @property
    def meta(self) -> IndexMeta:
        return self.ann.meta

    def check_space(self, space: str) -> None:
        self.ann.check_space(space)

    def uses_exact(self, k: int, allowed_rows: np.ndarray | None) -> bool:
        """Whether a search of depth ``k`` among ``allowed_rows`` goes to exact search."""
        if k > (self.meta.hnsw_ef_search or 0):
            return True
        return allowed_rows is not None and len(allowed_rows) < self.min_allowed_fraction * self.meta.size

    def search(
        self, queries: np.ndarray, k: int, allowed_rows: np.ndarray | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` ids and scores: from the graph, or exactly when :meth:`uses_exact` says so."""
        path = "exact" if self.uses_exact(k, allowed_rows) else "ann"
        self.searches[path] += 1
        index = self.exact if path == "exact" else self.ann
        return index.search(queries, k, allowed_rows=allowed_rows)
