"""harness-lm: distil a large, slow retrieval model into a small, fast query encoder that searches the big
model's own index, and measure how much quality it kept and how much speed it won.

The public API is the same set of steps the ``harness`` command runs::

    from harnesslm import load_config, run_recipe
    run = run_recipe(load_config("configs/homedepot.yaml"), "runs/homedepot")

or step by step: ``prepare``, ``teacher``, ``build_index``, ``align``, ``refine``, ``evaluate``, ``bench``; then
``export`` (ONNX encoders for serving). Outside a run directory, ``distill_query_encoder(teacher, texts, ...)``
returns a query encoder for a teacher's index in one call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Imported on first use: `import harnesslm.losses` (or `harness --help`) must not pull in the trainer, FAISS
# and the data stack that the whole recipe needs.
_EXPORTS = {
    "RunConfig": "harnesslm.config",
    "StudentConfig": "harnesslm.config",
    "load_config": "harnesslm.config",
    "ItemSpace": "harnesslm.distill",
    "distill_query_encoder": "harnesslm.distill",
    "bench": "harnesslm.pipeline.bench",
    "evaluate": "harnesslm.pipeline.evaluate",
    "export": "harnesslm.pipeline.export",
    "demo_config": "harnesslm.pipeline.recipe",
    "run_recipe": "harnesslm.pipeline.recipe",
    "write_report": "harnesslm.report.markdown",
    "RunDir": "harnesslm.run.run_dir",
    "align": "harnesslm.pipeline.steps",
    "build_index": "harnesslm.pipeline.steps",
    "prepare": "harnesslm.pipeline.steps",
    "refine": "harnesslm.pipeline.steps",
    "teacher": "harnesslm.pipeline.steps",
}
__all__ = [
    "ItemSpace",
    "RunConfig",
    "RunDir",
    "StudentConfig",
    "align",
    "bench",
    "build_index",
    "demo_config",
    "distill_query_encoder",
    "evaluate",
    "export",
    "load_config",
    "prepare",
    "refine",
    "run_recipe",
    "teacher",
    "write_report",
]

if TYPE_CHECKING:
    from harnesslm.config import RunConfig, StudentConfig, load_config
    from harnesslm.distill import ItemSpace, distill_query_encoder
    from harnesslm.pipeline.bench import bench
    from harnesslm.pipeline.evaluate import evaluate
    from harnesslm.pipeline.export import export
    from harnesslm.pipeline.recipe import demo_config, run_recipe
    from harnesslm.pipeline.steps import align, build_index, prepare, refine, teacher
    from harnesslm.report.markdown import write_report
    from harnesslm.run.run_dir import RunDir


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harnesslm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
