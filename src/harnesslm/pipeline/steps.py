"""The recipe's steps in one namespace, in order: ``prepare``, ``teacher``, ``build_index``, ``align``,
``refine`` (evaluation, bench and export have modules of their own). Each reads what earlier steps wrote in the
run directory and writes its own output atomically; the CLI subcommands and ``harness run`` call exactly these
functions. Each phase is a short driver module of its own: ``prepare``, ``teacher``, ``index``, ``align``,
``refine``, with the alignment pool's assembly in ``pool`` and a static student's table in ``static_table``.
"""

from harnesslm.pipeline.align import align, validation_scorer
from harnesslm.pipeline.alignment_pool import alignment_pool
from harnesslm.pipeline.index import build_index
from harnesslm.pipeline.prepare import prepare
from harnesslm.pipeline.refine import refine
from harnesslm.pipeline.static_table import distill_static_baseline, shop_texts, static_source, static_vocabulary
from harnesslm.pipeline.teacher import hard_negatives, teacher

__all__ = [
    "align",
    "alignment_pool",
    "build_index",
    "distill_static_baseline",
    "hard_negatives",
    "prepare",
    "refine",
    "shop_texts",
    "static_source",
    "static_vocabulary",
    "teacher",
    "validation_scorer",
]
