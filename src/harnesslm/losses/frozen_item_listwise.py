"""Listwise/pairwise ranking losses of a student query encoder over lists of *frozen* teacher item embeddings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from harnesslm.losses.ranking_objectives import LIST_OBJECTIVES

PAD_ROW = -1
"""Item row that marks a padding slot in a candidate list (its label is ignored)."""

MAX_EXACT_ROW = 2**24
"""Rows travel as float32 labels through the trainer's collator: integers are exact below 2**24."""


class FrozenItemListwiseLoss(nn.Module):
    def __init__(
        self,
        model: SentenceTransformer,
        item_embeddings: Tensor,
        objective: str = "approx_ndcg",
        temperature: float = 0.05,
        **objective_kwargs: Any,
    ) -> None:
        """A learning-to-rank objective on each query's candidate list, scored against frozen teacher items.

        Like :class:`~harnesslm.losses.FrozenItemContrastiveLoss`, only the query tower trains and the items stay
        the teacher's embeddings. Each dataset row is one query with a fixed-length list of candidate item rows
        and their graded labels (or teacher scores); the student's scores are
        ``cos(student(query), item_embeddings[row]) / temperature`` and ``objective`` compares them with the
        labels (see :mod:`harnesslm.losses.ranking_objectives`, which also says which queries are skipped).

        Dataset layout (build it with :func:`listwise_dataset`): a ``query`` text column and a ``label`` column
        holding, per row, the flat float list ``[row_1, ..., row_L, label_1, ..., label_L]`` with the same ``L`` on
        every row; a slot with row ``-1`` is padding (its label is ignored). Rows must be below ``2**24``, since
        the collator turns labels into a float32 tensor.

        Args:
            model: the student query encoder (its embeddings are L2-normalised here, so scores are cosines).
            item_embeddings: ``(n_items, dim)`` teacher item embeddings (frozen; normalised here).
            objective: ``"approx_ndcg"``, ``"listnet"``, ``"listmle"``, ``"lambdaloss"`` (NDCG-Loss2++ weights)
                or ``"ranknet"``.
            temperature: divides the cosines (scale = 1 / temperature). ``alpha`` (approxNDCG) and ``sigma``
                (LambdaLoss, RankNet) act on top of it.
            **objective_kwargs: options of the objective, e.g. ``alpha``, ``weighting``, ``mu``, ``sigma``, ``k``.

        References:
            - Qin, Liu & Li, A general approximation framework for direct optimization of information retrieval
              measures, 2010; Bruch et al., Revisiting approximate metric optimization, SIGIR 2019 (approxNDCG).
            - Cao et al., Learning to rank: from pairwise approach to listwise approach, ICML 2007 (ListNet).
            - Xia et al., Listwise approach to learning to rank: theory and algorithm, ICML 2008 (ListMLE).
            - Wang et al., The LambdaLoss framework for ranking metric optimization, CIKM 2018 (LambdaLoss).
            - Burges et al., Learning to rank using gradient descent, ICML 2005 (RankNet).

        Inputs:
            +---------------+-----------------------------------------------------------------+
            | Texts         | Labels                                                          |
            +===============+=================================================================+
            | query         | ``(batch, 2 * L)`` floats: ``L`` item rows (-1 = pad), ``L`` labels |
            +---------------+-----------------------------------------------------------------+

        Example:
            ::

                dataset = listwise_dataset(["cordless drill"], [[12, 7, 40]], [[3.0, 1.0, 0.0]])
                loss = FrozenItemListwiseLoss(student, torch.from_numpy(item_emb), objective="lambdaloss")
                train(student, dataset, loss, max_steps=1000, batch_size=32, learning_rate=2e-5)
        """
        super().__init__()
        if objective not in LIST_OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {sorted(LIST_OBJECTIVES)}")
        self.model = model
        self.register_buffer(
            "item_embeddings", nn.functional.normalize(item_embeddings.float(), dim=-1), persistent=False
        )
        self.objective = objective
        self.temperature = temperature
        self.objective_kwargs = objective_kwargs

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = next(iter(sentence_features))
        queries = nn.functional.normalize(self.model(features)["sentence_embedding"], dim=-1)
        rows, grades = split_listwise_labels(labels)
        mask = rows >= 0
        items = self.item_embeddings[rows.clamp(min=0).to(self.item_embeddings.device)].to(queries.device)
        scores = torch.einsum("bd,bld->bl", queries, items) / self.temperature
        objective = LIST_OBJECTIVES[self.objective]
        return objective(scores, grades.to(queries.device), mask.to(queries.device), **self.objective_kwargs)

    def get_config_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "temperature": self.temperature, **self.objective_kwargs}


def split_listwise_labels(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(batch, 2 L)`` labels → ``(rows, grades)``, both ``(batch, L)``; rows are int64 (``-1`` = padding)."""
    if labels.dim() != 2 or labels.shape[1] % 2:
        raise ValueError(f"listwise labels must be (batch, 2 * list_size), got shape {tuple(labels.shape)}")
    size = labels.shape[1] // 2
    return labels[:, :size].round().long(), labels[:, size:].float()


def listwise_dataset(
    queries: Sequence[str],
    candidate_rows: Sequence[Sequence[int]],
    candidate_labels: Sequence[Sequence[float]],
    list_size: int | None = None,
) -> Dataset:
    """The ``query`` / ``label`` dataset :class:`FrozenItemListwiseLoss` trains on.

    Lists may have different lengths: each is padded with row ``-1`` (label 0) to ``list_size`` (default: the
    longest list). ``label`` is ``[row_1, ..., row_L, label_1, ..., label_L]`` as floats.
    """
    if not len(queries) == len(candidate_rows) == len(candidate_labels):
        raise ValueError("queries, candidate_rows and candidate_labels must have the same length")
    longest = max((len(rows) for rows in candidate_rows), default=0)
    size = longest if list_size is None else list_size
    if size < longest:
        raise ValueError(f"list_size {size} is shorter than the longest candidate list ({longest})")
    flat = []
    for rows, grades in zip(candidate_rows, candidate_labels, strict=True):
        if len(rows) != len(grades):
            raise ValueError(f"a list has {len(rows)} rows but {len(grades)} labels")
        if any(not 0 <= int(row) < MAX_EXACT_ROW for row in rows):
            raise ValueError(f"item rows must be in [0, {MAX_EXACT_ROW}) (float32 labels hold them exactly)")
        padding = size - len(rows)
        flat.append(
            [float(row) for row in rows] + [float(PAD_ROW)] * padding + [float(g) for g in grades] + [0.0] * padding
        )
    return Dataset.from_dict({"query": list(queries), "label": flat})
