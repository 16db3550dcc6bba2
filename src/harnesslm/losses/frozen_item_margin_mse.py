"""Margin-MSE distillation of a student query encoder against *frozen* teacher item embeddings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from harnesslm.losses.frozen_item_listwise import MAX_EXACT_ROW
from harnesslm.losses.ranking_objectives import margin_mse_loss


class FrozenItemMarginMSELoss(nn.Module):
    def __init__(self, model: SentenceTransformer, item_embeddings: Tensor, scale: float = 1.0) -> None:
        """MSE between the student's score margin on two items and the teacher's margin on the same two items.

        The student scores ``score(q, i) = scale * cos(student(q), item_embeddings[i])``; its margin
        ``score(q, a) - score(q, b)`` is regressed onto the teacher's margin. A cosine margin lies in ``[-2, 2]``
        (in practice a few tenths), so ``scale`` puts the student in the teacher's units: keep ``1.0`` when the
        teacher margins are differences of the teacher's own cosines (the bi-encoder teacher of this recipe);
        use about the teacher's score range (e.g. ``10``-``20``) for cross-encoder logits, or the teacher's
        ``1 / temperature`` for temperature-scaled similarities. Without it the student could not reach large
        margins however well it ranks, and the MSE would keep pushing on pairs it already orders correctly.

        Dataset layout (build it with :func:`margin_dataset`): a ``query`` text column and a ``label`` column
        holding ``[row_a, row_b, teacher_margin]`` (floats; rows below ``2**24``), where
        ``teacher_margin = teacher_score(q, a) - teacher_score(q, b)``.

        Args:
            model: the student query encoder (its embeddings are L2-normalised here, so scores are cosines).
            item_embeddings: ``(n_items, dim)`` teacher item embeddings (frozen; normalised here).
            scale: multiplies the student's cosines (see above).

        References:
            - Hofstätter et al., Improving efficient neural ranking models with cross-architecture knowledge
              distillation, arXiv:2010.02666, 2020.

        Inputs:
            +---------------+--------------------------------------------------------+
            | Texts         | Labels                                                 |
            +===============+========================================================+
            | query         | ``(batch, 3)`` floats: ``row_a, row_b, teacher_margin`` |
            +---------------+--------------------------------------------------------+

        Example:
            ::

                dataset = margin_dataset(["cordless drill"], [12], [40], [0.21])
                loss = FrozenItemMarginMSELoss(student, torch.from_numpy(item_emb), scale=1.0)
                train(student, dataset, loss, max_steps=1000, batch_size=32, learning_rate=2e-5)
        """
        super().__init__()
        self.model = model
        self.register_buffer(
            "item_embeddings", nn.functional.normalize(item_embeddings.float(), dim=-1), persistent=False
        )
        self.scale = scale

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = next(iter(sentence_features))
        queries = nn.functional.normalize(self.model(features)["sentence_embedding"], dim=-1)
        if labels.dim() != 2 or labels.shape[1] != 3:
            raise ValueError(f"margin labels must be (batch, 3) [row_a, row_b, margin], got {tuple(labels.shape)}")
        rows = labels[:, :2].round().long().to(self.item_embeddings.device)
        items_a = self.item_embeddings[rows[:, 0]].to(queries.device)
        items_b = self.item_embeddings[rows[:, 1]].to(queries.device)
        score_a = self.scale * (queries * items_a).sum(dim=-1)
        score_b = self.scale * (queries * items_b).sum(dim=-1)
        return margin_mse_loss(score_a, score_b, labels[:, 2].to(queries.device))

    def get_config_dict(self) -> dict[str, float]:
        return {"scale": self.scale}


def margin_dataset(
    queries: Sequence[str], rows_a: Sequence[int], rows_b: Sequence[int], teacher_margins: Sequence[float]
) -> Dataset:
    """The ``query`` / ``label`` dataset :class:`FrozenItemMarginMSELoss` trains on (``label = [a, b, margin]``)."""
    if not len(queries) == len(rows_a) == len(rows_b) == len(teacher_margins):
        raise ValueError("queries, rows_a, rows_b and teacher_margins must have the same length")
    if any(not 0 <= int(row) < MAX_EXACT_ROW for row in [*rows_a, *rows_b]):
        raise ValueError(f"item rows must be in [0, {MAX_EXACT_ROW}) (float32 labels hold them exactly)")
    labels = [[float(a), float(b), float(m)] for a, b, m in zip(rows_a, rows_b, teacher_margins, strict=True)]
    return Dataset.from_dict({"query": list(queries), "label": labels})
