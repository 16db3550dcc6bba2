"""Adversarial training on the input embeddings (FGM), with a contrastive term between clean and perturbed views."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.cross_encoder import CrossEncoder
from torch import Tensor, nn
from torch.nn import functional


class AdversarialContrastiveLoss(nn.Module):
    def __init__(
        self,
        model: SentenceTransformer | CrossEncoder,
        loss: nn.Module,
        epsilon: float = 1.0,
        weight: float = 1.0,
        view_temperature: float = 0.05,
    ) -> None:
        """``loss`` on clean inputs, plus ``weight`` times (the same loss on inputs perturbed by the fast gradient
        method, and an InfoNCE between each text's clean and perturbed embedding).

        FGM perturbs every text's word embeddings by ``epsilon`` times the normalised gradient of the clean loss
        with respect to them: the direction that hurts the model most, to first order. Training on both views
        makes the encoder's ranking less sensitive to small changes of a query's wording (a misspelling, a word
        swapped for a near-synonym), which is where product-search relevance models fail out of distribution.
        The contrastive term between views (each text's clean embedding must find its own perturbed one among
        the batch's) is the "contrastive adversarial training" of the Alibaba relevance paper. No library ships
        it for sentence-transformers, hence this module. It costs about two forward passes and one extra
        gradient per batch.

        A cross-encoder (the relevance teacher, the model the Alibaba paper trains) is perturbed the same way,
        on the word embeddings of its (query, item) pairs; its view of a pair is the first token's final hidden
        state, the representation its classification head reads.

        Args:
            model: the model being trained, a bi-encoder or a cross-encoder; its first module is a Transformer
                (the word embeddings perturbed).
            loss: the base loss over the same columns (e.g. ``MultipleNegativesRankingLoss`` of a bi-encoder,
                ``BinaryCrossEntropyLoss`` of a cross-encoder).
            epsilon: L2 norm of each text's perturbation, over its tokens' embeddings.
            weight: weight of the adversarial and view terms beside the clean loss.
            view_temperature: softmax temperature of the clean-to-perturbed InfoNCE.

        References:
            - Miyato, Dai & Goodfellow, Adversarial Training Methods for Semi-Supervised Text Classification
              (FGM on word embeddings), ICLR 2017.
            - Robust interaction-based relevance modelling for online e-commerce search (Alibaba): contrastive
              adversarial training between clean and perturbed views.

        Inputs:
            The base loss's columns and labels (for the teacher: ``anchor, positive, negative_1..n``, no labels;
            for the relevance teacher: ``query, text`` and a soft label).

        Example:
            ::

                base = MultipleNegativesRankingLoss(teacher, scale=20.0)
                loss = AdversarialContrastiveLoss(teacher, base, epsilon=1.0, weight=0.5)
                pairs = AdversarialContrastiveLoss(cross_encoder, BinaryCrossEntropyLoss(cross_encoder), 0.1)
        """
        super().__init__()
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.model = model
        self.loss = loss
        self.epsilon = epsilon
        self.weight = weight
        self.view_temperature = view_temperature
        self._embeddings = model[0].auto_model.get_input_embeddings()

    def forward(self, sentence_features: Iterable, labels: Tensor | None = None, **kwargs) -> Tensor:
        """``kwargs`` (a cross-encoder trainer's ``prompt`` and ``task``) go to the base loss as they came."""
        features = list(sentence_features)
        with self._recorded() as clean_inputs, self._views() as clean_views:
            clean = self.loss(features, labels, **kwargs)
        perturbations = self.perturbations(clean, clean_inputs)
        with self._perturbed(perturbations), self._views() as adversarial_views:
            adversarial = self.loss(features, labels, **kwargs)
        pairs = zip(clean_views, adversarial_views, strict=True)
        views = sum(view_contrast(a, b, self.view_temperature) for a, b in pairs) / max(len(clean_views), 1)
        return clean + self.weight * (adversarial + views)

    def perturbations(self, clean: Tensor, inputs: list[Tensor]) -> list[Tensor]:
        """FGM: ``epsilon`` times each text's gradient direction (over all its token embeddings), detached."""
        grads = torch.autograd.grad(clean, inputs, retain_graph=True, allow_unused=True)
        out = []
        for grad, embedded in zip(grads, inputs, strict=True):
            if grad is None:
                out.append(torch.zeros_like(embedded))
                continue
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (grad.dim() - 1)))
            out.append((self.epsilon * grad / norm).detach())
        return out

    @contextmanager
    def _recorded(self):
        """Keep every word-embedding output of the forward passes inside (one per text column)."""
        kept: list[Tensor] = []
        handle = self._embeddings.register_forward_hook(lambda _m, _i, out: kept.append(out))
        try:
            yield kept
        finally:
            handle.remove()

    @contextmanager
    def _perturbed(self, perturbations: list[Tensor]):
        """Add the perturbations to the word embeddings, in the order the clean pass produced them."""
        pending = iter(perturbations)
        handle = self._embeddings.register_forward_hook(lambda _m, _i, out: out + next(pending))
        try:
            yield
        finally:
            handle.remove()

    @contextmanager
    def _views(self):
        """Keep each forward pass's views inside: a bi-encoder's sentence embeddings (one pass per text column),
        a cross-encoder's first-token hidden states (one pass over the pairs)."""
        kept: list[Tensor] = []
        if isinstance(self.model, CrossEncoder):
            encoder = self.model[0].auto_model.base_model
            handle = encoder.register_forward_hook(lambda _m, _i, out: kept.append(out[0][:, 0]))
        else:
            handle = self.model.register_forward_hook(lambda _m, _i, out: kept.append(out["sentence_embedding"]))
        try:
            yield kept
        finally:
            handle.remove()


def view_contrast(clean: Tensor, perturbed: Tensor, temperature: float) -> Tensor:
    """InfoNCE: each clean embedding against every perturbed one of its column; its own is the positive."""
    scores = functional.normalize(clean, dim=-1) @ functional.normalize(perturbed, dim=-1).T / temperature
    return functional.cross_entropy(scores, torch.arange(len(scores), device=scores.device))
