"""Ranking losses by name: sentence-transformers' where it has them, ours where it does not.

``cross_encoder_ranking_loss`` builds a loss for a :class:`~sentence_transformers.cross_encoder.CrossEncoder`,
``bi_encoder_ranking_loss`` one for a student query encoder scored against frozen teacher item embeddings. The
names are the same on both sides: ``margin_mse``, ``approx_ndcg``, ``listnet``, ``listmle``, ``lambdaloss`` and
``ranknet``.
"""

from __future__ import annotations

from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import (
    LambdaLoss,
    ListMLELoss,
    ListNetLoss,
    MarginMSELoss,
    NDCGLoss2PPScheme,
    RankNetLoss,
)
from torch import Tensor, nn

from harnesslm.config import RANKING_LOSSES
from harnesslm.losses.approx_ndcg import ApproxNDCGLoss
from harnesslm.losses.frozen_item_listwise import FrozenItemListwiseLoss
from harnesslm.losses.frozen_item_margin_mse import FrozenItemMarginMSELoss

PAIRWISE_LOSSES = ("margin_mse",)
"""Losses trained on (query, item a, item b, teacher margin) pairs rather than on scored lists."""


def takes_pairs(name: str) -> bool:
    """Whether the loss ``name`` trains on margin pairs (else on lists of ``list_size`` scored items)."""
    return name in PAIRWISE_LOSSES


def rows_per_batch(name: str, lists_per_batch: int, list_size: int) -> int:
    """Dataset rows per training batch, so every loss scores the same (query, item) pairs per step: a list
    gives ``list_size // 2`` margin pairs to a pairwise loss."""
    return max(1, lists_per_batch * (list_size // 2)) if takes_pairs(name) else lists_per_batch


def cross_encoder_ranking_loss(name: str, model: CrossEncoder, **kwargs: Any) -> nn.Module:
    """The cross-encoder ranking loss called ``name``; ``kwargs`` go to its constructor.

    - ``margin_mse``: sentence-transformers ``MarginMSELoss`` (columns query, doc_a, doc_b; label = teacher margin).
    - ``approx_ndcg``: :class:`~harnesslm.losses.approx_ndcg.ApproxNDCGLoss` (ours; no library has it).
    - ``listnet``, ``listmle``, ``lambdaloss``, ``ranknet``: sentence-transformers ``ListNetLoss``,
      ``ListMLELoss``, ``LambdaLoss`` (``NDCGLoss2PPScheme`` weighting) and ``RankNetLoss``.

    The list losses take columns ``query`` (str), ``docs`` (list of str) and ``labels`` (list of numbers, same
    length as ``docs``). Two defaults differ from sentence-transformers' own, so that both towers optimise the same
    thing as :mod:`harnesslm.losses.ranking_objectives`: ``listmle`` sorts the documents by label
    (``respect_input_order=False``) instead of trusting the input order, and ``ranknet`` uses the natural log of
    Burges et al. (``reduction_log="natural"``). Pass either keyword to override.
    """
    if name == "margin_mse":
        return MarginMSELoss(model, **kwargs)
    if name == "approx_ndcg":
        return ApproxNDCGLoss(model, **kwargs)
    if name == "listnet":
        return ListNetLoss(model, **kwargs)
    if name == "listmle":
        kwargs.setdefault("respect_input_order", False)
        return ListMLELoss(model, **kwargs)
    if name == "lambdaloss":
        kwargs.setdefault("weighting_scheme", NDCGLoss2PPScheme())
        return LambdaLoss(model, **kwargs)
    if name == "ranknet":
        kwargs.setdefault("reduction_log", "natural")
        return RankNetLoss(model, **kwargs)
    raise ValueError(f"unknown ranking loss {name!r}; choose one of {RANKING_LOSSES}")


def bi_encoder_ranking_loss(
    name: str, model: SentenceTransformer, item_embeddings: Tensor, **kwargs: Any
) -> FrozenItemListwiseLoss | FrozenItemMarginMSELoss:
    """The frozen-item bi-encoder ranking loss called ``name``; ``kwargs`` go to its constructor.

    ``margin_mse`` gives :class:`~harnesslm.losses.FrozenItemMarginMSELoss` (``scale``); every other name gives
    :class:`~harnesslm.losses.FrozenItemListwiseLoss` with that objective (``temperature`` and the objective's
    options such as ``alpha``, ``mu``, ``sigma``).
    """
    if name == "margin_mse":
        return FrozenItemMarginMSELoss(model, item_embeddings, **kwargs)
    if name in RANKING_LOSSES:
        return FrozenItemListwiseLoss(model, item_embeddings, objective=name, **kwargs)
    raise ValueError(f"unknown ranking loss {name!r}; choose one of {RANKING_LOSSES}")
