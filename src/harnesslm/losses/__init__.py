"""Losses that no library ships in the form the recipe needs (one per module, like sentence-transformers)."""

from harnesslm.losses.frozen_item_contrastive import FrozenItemContrastiveLoss

__all__ = ["FrozenItemContrastiveLoss"]
