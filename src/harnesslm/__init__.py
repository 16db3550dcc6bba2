"""harness-lm: distil a large, slow retrieval model into a small, fast query encoder that searches the big
model's own index, and measure how much quality it kept and how much speed it won.

The public API is the same set of steps the ``harness`` command runs::

    from harnesslm import load_config, run_recipe
    run = run_recipe(load_config("configs/homedepot.yaml"), "runs/homedepot")

or step by step: ``prepare``, ``teacher``, ``build_index``, ``align``, ``refine``, ``evaluate``, ``bench``; then
``export`` (ONNX encoders for serving).
"""

from harnesslm.config import RunConfig, StudentConfig, load_config
from harnesslm.pipeline.bench import bench
from harnesslm.pipeline.evaluate import evaluate
from harnesslm.pipeline.export import export
from harnesslm.pipeline.recipe import demo_config, run_recipe
from harnesslm.pipeline.report import write_report
from harnesslm.pipeline.run_dir import RunDir
from harnesslm.pipeline.steps import align, build_index, prepare, refine, teacher

__version__ = "0.1.0"

__all__ = [
    "RunConfig",
    "RunDir",
    "StudentConfig",
    "align",
    "bench",
    "build_index",
    "demo_config",
    "evaluate",
    "export",
    "load_config",
    "prepare",
    "refine",
    "run_recipe",
    "teacher",
    "write_report",
]
