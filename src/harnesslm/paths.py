"""Where the toolkit keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$HARNESSLM_CACHE``, else ``$XDG_CACHE_HOME/harnesslm``, else ``~/.cache/harnesslm``."""
    if env := os.environ.get("HARNESSLM_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harnesslm"
