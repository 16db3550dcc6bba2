"""The catalog rows behind the index: titles and filterable fields, row-aligned with the index."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from harnesslm.serving.schemas import FilterValues
from harnesslm.serving.service_error import ServiceError


class ItemTable:
    """Titles and fields of the indexed items, row-aligned with the index (row = position in ``item_ids``)."""

    def __init__(self, item_ids: Sequence[str], items: pd.DataFrame, fields: Sequence[str] | None = None) -> None:
        frame = items.drop_duplicates("item_id").set_index("item_id")
        missing = pd.Index(item_ids).difference(frame.index)
        if len(missing):
            raise ServiceError(
                f"{len(missing)} indexed items are not in the catalog (e.g. {missing[0]!r}): rebuild the index"
            )
        aligned = frame.reindex(pd.Index(item_ids))
        names = [c for c in aligned.columns if c != "text"] if fields is None else list(fields)
        unknown = [f for f in names if f not in aligned.columns]
        if unknown:
            raise ServiceError(f"catalog has no field {unknown[0]!r}; it has: {', '.join(aligned.columns)}")
        self.titles: list[str] = aligned["text"].astype(str).tolist()
        self.fields: dict[str, np.ndarray] = {
            name: aligned[name].fillna("").astype(str).to_numpy(dtype=object) for name in names
        }
        self._rows = lru_cache(maxsize=256)(self._rows_uncached)

    def record(self, row: int) -> tuple[str, dict[str, str]]:
        return self.titles[row], {name: values[row] for name, values in self.fields.items()}

    def allowed_rows(self, filters: Mapping[str, FilterValues] | None) -> tuple[np.ndarray | None, Hashable]:
        """Rows matching every filter (None: no filter) and a hashable key for the filter.

        Raises ValueError naming an unknown field or a filter without values.
        """
        if not filters:
            return None, None
        key = []
        for name, values in sorted(filters.items()):
            if name not in self.fields:
                known = ", ".join(self.fields) or "none"
                raise ValueError(f"unknown filter field {name!r}; filterable fields: {known}")
            wanted = [values] if isinstance(values, str) else list(values)
            if not wanted:
                raise ValueError(f"filter {name!r} has no values")
            key.append((name, tuple(sorted(set(wanted)))))
        frozen = tuple(key)
        return self._rows(frozen), frozen

    def _rows_uncached(self, key: tuple[tuple[str, tuple[str, ...]], ...]) -> np.ndarray:
        mask = np.ones(len(self.titles), dtype=bool)
        for name, values in key:
            mask &= np.isin(self.fields[name], np.asarray(values, dtype=object))
        return np.flatnonzero(mask).astype(np.int64)
