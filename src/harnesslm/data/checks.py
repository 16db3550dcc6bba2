"""Checks that need the whole data set and the config: labels against the scale, enough positives per split.

They run at ``prepare``, so a run with nothing to learn from stops there with one line that says what is
missing, instead of failing in a later step ("query embeddings have 0 dimensions").
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from harnesslm.data.errors import DataError

logger = logging.getLogger(__name__)

OFF_SCALE_FACTOR = 10.0
"""Without ``label_max``, a label more than this many times the relevance step above ``label_offset`` reads as
off the scale (99 on a 1..3 scale) and is warned about."""


def check_labels(
    judgments: pd.DataFrame, path: Path, label_offset: float, relevant_at: float, label_max: float | None
) -> list[str]:
    """Refuse labels below ``label_offset`` (negative gains) or above ``label_max``; return warnings.

    ``judgments`` has a ``label`` column. Without ``label_max``, labels far above ``relevant_at`` give a
    warning with their count rather than an error, since the scale is then unknown.
    """
    labels = judgments["label"]
    low = labels < label_offset
    if low.any():
        raise DataError(
            f"{int(low.sum()):,} label(s) below data.label_offset={label_offset:g} (lowest {labels.min():g}); "
            "their gain would be negative. Fix the labels or set data.label_offset to the bottom of your scale",
            path=path,
        )
    if label_max is not None and (labels > label_max).any():
        high = labels > label_max
        raise DataError(
            f"{int(high.sum()):,} label(s) above data.label_max={label_max:g} (highest {labels.max():g})",
            path=path,
        )
    warnings = []
    ceiling = label_offset + OFF_SCALE_FACTOR * max(relevant_at - label_offset, 1.0)
    if label_max is None and (labels > ceiling).any():
        high = labels > ceiling
        warnings.append(
            f"{path}: {int(high.sum()):,} label(s) above {ceiling:g} (highest {labels.max():g}) look off the scale "
            f"implied by label_offset={label_offset:g} and relevant_at={relevant_at:g}; set data.label_max to "
            "make them an error"
        )
    return warnings


def check_positives(
    splits: dict[str, pd.DataFrame], shares: tuple[float, ...], items: int, path: Path, relevant_at: float
) -> None:
    """Each split given a share needs queries with a relevant item, and the catalog at least two items.

    Training needs at least one query with a judgment at or above ``relevant_at``; so do validation and test
    when ``shares`` (``data.split``) gives them queries. A split whose share is 0 is allowed and skipped.
    """
    if items < 2:
        raise DataError(f"the catalog has {items} item(s); retrieval needs at least 2", path=path)
    judged = pd.concat(list(splits.values()))
    if judged.empty or not (judged["label"] >= relevant_at).any():
        top = f"labels range {judged['label'].min():g}..{judged['label'].max():g}" if len(judged) else "no judgments"
        raise DataError(
            f"no judgment reaches data.relevant_at={relevant_at:g} ({top}): nothing counts as relevant, so there "
            "is nothing to train on or to evaluate. Lower data.relevant_at or check the label column",
            path=path,
        )
    total = judged["query"].nunique()
    for (name, frame), share in zip(splits.items(), shares, strict=True):
        queries = frame["query"].nunique()
        if share > 0 and queries == 0:
            wanted = sum(1 for s in shares if s > 0)
            raise DataError(
                f"the {name} split is empty although data.split gives it {share:g}: {total} judged "
                f"quer{'y is' if total == 1 else 'ies are'} too few (at least {wanted} needed, one per split with "
                "a share; a useful run needs hundreds). Give more judged queries, or set its share to 0",
                path=path,
            )
        positive = frame.loc[frame["label"] >= relevant_at, "query"].nunique()
        if name == "train" and positive == 0:
            raise DataError(
                f"the training split has {queries} queries and none with a relevant item (label >= "
                f"{relevant_at:g}); training needs at least 1. Give more judged queries or raise the training "
                "share of data.split",
                path=path,
            )
        if queries and positive == 0:
            raise DataError(
                f"the {name} split has {queries} queries and none with a relevant item (label >= {relevant_at:g}); "
                f"it needs at least 1, or set its share in data.split to 0",
                path=path,
            )
