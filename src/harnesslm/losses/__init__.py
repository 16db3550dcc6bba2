"""Losses that no library ships in the form the recipe needs (one per module, like sentence-transformers)."""

from harnesslm.losses.adversarial_contrastive import AdversarialContrastiveLoss
from harnesslm.losses.approx_ndcg import ApproxNDCGLoss
from harnesslm.losses.contrastive_margin_mse import ContrastiveMarginMSELoss
from harnesslm.losses.frozen_item_contrastive import FrozenItemContrastiveLoss
from harnesslm.losses.frozen_item_listwise import FrozenItemListwiseLoss, listwise_dataset
from harnesslm.losses.frozen_item_margin_mse import FrozenItemMarginMSELoss, margin_dataset
from harnesslm.losses.frozen_item_score_distill import FrozenItemScoreDistillLoss, teacher_top_items
from harnesslm.losses.graph_regularized import GraphRegularizedLoss
from harnesslm.losses.token_intervention import TokenInterventionLoss

__all__ = [
    "AdversarialContrastiveLoss",
    "ApproxNDCGLoss",
    "ContrastiveMarginMSELoss",
    "FrozenItemContrastiveLoss",
    "FrozenItemListwiseLoss",
    "FrozenItemMarginMSELoss",
    "FrozenItemScoreDistillLoss",
    "GraphRegularizedLoss",
    "TokenInterventionLoss",
    "listwise_dataset",
    "margin_dataset",
    "teacher_top_items",
]
