"""benchmarks/early_stopping.py replays a recorded validation curve exactly as KeepBest would have stopped."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _replay():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from early_stopping import replay
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return replay


def test_replay_stops_where_keep_best_would() -> None:
    replay = _replay()
    curve = [[0, 0.50], [2, 0.70], [4, 0.60], [6, 0.72], [8, 0.90]]
    assert replay(curve, patience=2, min_delta=0.05) == (6, 0.72)  # 0.72 is kept, but gained under 0.05
    assert replay(curve, patience=2, min_delta=0.0) == (8, 0.90)  # 0.72 counted as a gain: runs to the end
    assert replay(curve, patience=1, min_delta=0.0) == (4, 0.70)
