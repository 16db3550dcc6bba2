"""An intervention regulariser beside the contrastive loss: each sampled token's effect on the relevance score
stays close to the base model's, so fine-tuning does not learn spurious token correlations of the click pairs."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn
from torch.nn import functional


class TokenInterventionLoss(nn.Module):
    def __init__(
        self,
        model: SentenceTransformer,
        loss: nn.Module,
        weight: float = 0.1,
        tokens: int = 16,
        temperature: float = 0.05,
        base_model: SentenceTransformer | None = None,
        seed: int = 0,
    ) -> None:
        """``loss`` over the columns, plus ``weight`` times the mean squared difference between each sampled
        token's causal effect on the (query, positive) score under ``model`` and under the base model.

        The effect of a token is an intervention: the score of the pair with the token, less the score with
        the token removed (its attention mask set to 0, so no other token and no pooling sees it), in logits
        (cosine over ``temperature``). Fine-tuning on click pairs can raise the effect of tokens that merely
        co-occur with clicks in the training categories (a colour, a pack size, a brand seen with one product
        type); holding each token's effect near the base model's keeps what the large pre-trained model knew of
        token importance and helps most on queries from categories and periods not in training. The cost is
        bounded by ``tokens`` interventions per batch (half on query tokens, half on item tokens, at random
        rows and positions, special tokens never removed): six more forward passes over that many rows, three
        of them without gradients through the frozen base model. No library ships this term, hence this module.

        Args:
            model: the encoder being trained.
            loss: the base loss over the same columns (e.g. ``MultipleNegativesRankingLoss`` of ``model``).
            weight: weight of the intervention term (0 turns it off).
            tokens: interventions sampled per batch (at most one per row and side).
            temperature: the scores' temperature (the contrastive loss's), so effects are in its logits.
            base_model: the model whose token effects are kept (default: a frozen copy of ``model`` as it is
                now, before fine-tuning).
            seed: seeds the sampling of rows and positions.

        References:
            - Out-of-distribution generalisation of text matching for product search (Amazon): an
              intervention-based regulariser that keeps each token's causal effect on the relevance score close
              to the base model's.

        Inputs:
            The base loss's columns (for the teacher: ``anchor, positive, negative_1..n``); the first two are the
            query and its relevant item. No labels.

        Example:
            ::

                base = MultipleNegativesRankingLoss(teacher, scale=20.0)
                loss = TokenInterventionLoss(teacher, base, weight=0.1, tokens=16)
        """
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if tokens < 1:
            raise ValueError(f"tokens must be >= 1, got {tokens}")
        self.model = model
        self.loss = loss
        self.weight = weight
        self.tokens = tokens
        self.temperature = temperature
        base = base_model if base_model is not None else copy.deepcopy(model)
        base.eval()
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self._base = [base]  # in a list: not a submodule, so neither trained nor saved with the loss
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def base_model(self) -> SentenceTransformer:
        return self._base[0]

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        base = self.loss(features, labels)
        if self.weight == 0:
            return base
        return base + self.weight * self.intervention_gap(features[0], features[1])

    def intervention_gap(self, queries: dict[str, Tensor], items: dict[str, Tensor]) -> Tensor:
        """Mean squared difference of the sampled tokens' effects, trained model against base model."""
        gaps = []
        for side, count in ((0, (self.tokens + 1) // 2), (1, self.tokens // 2)):
            sample = sample_positions(queries if side == 0 else items, count, self.generator)
            if sample is None:
                continue
            rows, positions = sample
            query, item = _rows(queries, rows), _rows(items, rows)
            if side == 0:
                cut_query, cut_item = removed(query, positions), item
            else:
                cut_query, cut_item = query, removed(item, positions)
            effect = self._effect(self.model, query, item, cut_query, cut_item)
            self.base_model.to(effect.device)
            with torch.no_grad():
                reference = self._effect(self.base_model, query, item, cut_query, cut_item)
            gaps.append(functional.mse_loss(effect, reference, reduction="sum"))
        if not gaps:
            return torch.zeros((), device=next(self.model.parameters()).device)
        return torch.stack(gaps).sum() / max(self.tokens, 1)

    def _effect(self, model, query, item, cut_query, cut_item) -> Tensor:
        """score(query, item) - score(query or item without the token), in logits."""
        whole = _cosine(model, query, item)
        cut = _cosine(model, cut_query, cut_item)
        return (whole - cut) / self.temperature


def sample_positions(features: dict[str, Tensor], count: int, generator: torch.Generator) -> tuple | None:
    """Up to ``count`` distinct rows, each with one removable position: attended, and neither the first nor the
    last attended token (a tokenizer's special tokens); rows with fewer than three attended tokens are passed."""
    mask = features["attention_mask"].detach().cpu()
    lengths = mask.sum(dim=1)
    eligible = torch.nonzero(lengths >= 3).flatten()
    if len(eligible) == 0 or count < 1:
        return None
    rows = eligible[torch.randperm(len(eligible), generator=generator)[:count]]
    positions = []
    for row in rows.tolist():
        attended = torch.nonzero(mask[row]).flatten()[1:-1]
        positions.append(int(attended[torch.randint(len(attended), (1,), generator=generator)]))
    return rows, torch.tensor(positions)


def removed(features: dict[str, Tensor], positions: Tensor) -> dict[str, Tensor]:
    """The rows' features with the token at each row's position removed (attention mask 0 there)."""
    out = dict(features)
    mask = features["attention_mask"].clone()
    mask[torch.arange(len(positions), device=mask.device), positions.to(mask.device)] = 0
    out["attention_mask"] = mask
    return out


def _rows(features: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    return {k: v[rows.to(v.device)] if isinstance(v, Tensor) and v.dim() > 0 else v for k, v in features.items()}


def _cosine(model: SentenceTransformer, a: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
    left = model(dict(a))["sentence_embedding"]
    right = model(dict(b))["sentence_embedding"]
    return functional.cosine_similarity(left, right, dim=-1)
