"""A tiny trained run shared by the service's tests."""

from __future__ import annotations

import pytest

from harnesslm.config import RunConfig
from harnesslm.pipeline import steps
from harnesslm.run.run_dir import RunDir


@pytest.fixture(scope="package")
def run(demo_files, tiny_teacher, tmp_path_factory) -> RunDir:
    """A prepared run (catalog with brand and category fields), its index and one quickly aligned student."""
    root = tmp_path_factory.mktemp("serve")
    config = RunConfig.model_validate(
        {
            "data": {
                "catalog": {"path": demo_files["catalog"], "fields": ["brand", "category"]},
                "judgments": {"path": demo_files["judgments"]},
                "split": [0.6, 0.2, 0.2],
            },
            "teacher": {"model": str(tiny_teacher), "enabled": False},
            "students": [{"name": "static", "kind": "static", "pca_dims": 16, "align": {"steps": 3}}],
            "cache_dir": str(root / "cache"),
        }
    )
    run = steps.prepare(config, root / "run")
    steps.teacher(run, progress=False)
    steps.build_index(run, progress=False)
    steps.align(run, progress=False)
    return run


@pytest.fixture(scope="package")
def queries(run: RunDir) -> list[str]:
    return list(dict.fromkeys(run.split("test")["query"]))[:12]
