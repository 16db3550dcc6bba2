"""The one error type raised for bad user data, so the CLI can print it without a traceback."""

from __future__ import annotations

from os import PathLike
from pathlib import Path


class DataError(ValueError):
    """A problem in a user's data file, located as precisely as we know.

    ``str()`` reads like ``products.csv, line 17, field 'product_uid': empty id``; parts that are
    unknown (None) are left out. ``line`` is a 1-based physical line of a text file; ``row`` is a
    1-based row number, used for formats without lines (Parquet).
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.path: Path | None = Path(path) if path is not None else None
        self.line = line
        self.row = row
        self.field = field
        super().__init__(self._format())

    @property
    def location(self) -> str:
        """Where the problem is, e.g. ``products.csv, line 17, field 'product_uid'`` (may be empty)."""
        parts: list[str] = []
        if self.path is not None:
            parts.append(str(self.path))
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def _format(self) -> str:
        location = self.location
        return f"{location}: {self.reason}" if location else self.reason

    def __reduce__(self):  # keep pickling (multiprocessing) working with keyword-only arguments
        return _rebuild, (self.reason, self.path, self.line, self.row, self.field)


def _rebuild(reason: str, path: Path | None, line: int | None, row: int | None, field: str | None) -> DataError:
    return DataError(reason, path=path, line=line, row=row, field=field)
