"""ApproxNDCG for cross-encoders, with the interface of sentence-transformers' cross-encoder ``ListNetLoss``."""

from __future__ import annotations

import torch
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.util import batch_to_device, fullname
from torch import Tensor, nn

from harnesslm.losses.ranking_objectives import approx_ndcg_loss


class ApproxNDCGLoss(nn.Module):
    def __init__(
        self,
        model: CrossEncoder,
        alpha: float = 10.0,
        standardize: bool = True,
        activation_fn: nn.Module | None = None,
        mini_batch_size: int | None = None,
    ) -> None:
        """``1 - approxNDCG`` of a cross-encoder's scores on each query's list of documents.

        NDCG with every rank replaced by the smooth rank ``1 + sum_{j != i} sigmoid(alpha * (s_j - s_i))``, so the
        metric itself is optimised (gains ``2^label - 1``, labels clamped at 0; see
        :func:`harnesslm.losses.ranking_objectives.approx_ndcg_loss`). sentence-transformers has no approxNDCG;
        this follows its ``ListNetLoss`` exactly in inputs, list handling and mini-batching. Queries with fewer
        than two documents, all-equal labels or no label above 0 are skipped (NDCG undefined or constant).

        .. note::

            The number of documents per query can vary between samples.

        Args:
            model: CrossEncoder with one output label.
            alpha: sharpness of the smooth rank; larger is closer to the true NDCG but gives sparser gradients.
            standardize: compute the smooth ranks on each list's standardised logits (default). Raw logits are
                unbounded, and approxNDCG rewards spreading them in any order (its discount is convex): on Home
                Depot a student trained on raw logits inflated its scores (std 3.0 against ListNet's 0.37).
                Standardising removes that, but did not make that student learn either (NDCG@10 0.090 on the
                re-ranked top-50; a random order of it scores 0.106).
            activation_fn: applied to the logits before the loss; ``None`` (default) is :class:`~torch.nn.Identity`.
            mini_batch_size: (query, document) pairs per forward pass; ``None`` = the batch size, ``<= 0`` = all
                pairs at once.

        References:
            - Qin, Liu & Li, A general approximation framework for direct optimization of information retrieval
              measures, Information Retrieval 13(4), 2010.
            - Bruch, Zoghi, Bendersky & Najork, Revisiting approximate metric optimization in the age of deep
              neural networks, SIGIR 2019.

        Inputs:
            +----------------------------------------+--------------------------------+-------------------------------+
            | Inputs                                 | Labels                         | Number of Model Output Labels |
            +========================================+================================+===============================+
            | (query, [doc1, doc2, ..., docN])       | [score1, score2, ..., scoreN]  | 1                             |
            +----------------------------------------+--------------------------------+-------------------------------+

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer

                model = CrossEncoder("path/to/student", num_labels=1)
                train_dataset = Dataset.from_dict({
                    "query": ["cordless drill", "paint brush"],
                    "docs": [["20V drill kit", "drill bits", "hammer"], ["2 in. angled brush", "roller"]],
                    "labels": [[3, 1, 0], [2, 1]],
                })
                trainer = CrossEncoderTrainer(model=model, train_dataset=train_dataset, loss=ApproxNDCGLoss(model))
                trainer.train()
        """
        super().__init__()
        self.model = model
        self.alpha = alpha
        self.standardize = standardize
        self.activation_fn = activation_fn or nn.Identity()
        self.mini_batch_size = mini_batch_size
        if self.model.num_labels != 1:
            raise ValueError(
                f"{self.__class__.__name__} supports a model with 1 output label, "
                f"but got a model with {self.model.num_labels} output labels."
            )

    def forward(
        self,
        inputs: list[list[str] | list[list[str]]],
        labels: list[Tensor],
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        if isinstance(labels, Tensor):
            raise ValueError(
                "ApproxNDCGLoss expects a list of labels for each sample, but got a single value for each sample."
            )
        if len(inputs) != 2:
            raise ValueError(
                f"ApproxNDCGLoss expects two inputs (queries, documents_list), but got {len(inputs)} inputs."
            )
        queries, docs_list = inputs
        docs_per_query = [len(docs) for docs in docs_list]
        if docs_per_query != [len(lbls) for lbls in labels]:
            raise ValueError(
                f"Number of documents per query in inputs ({docs_per_query}) does not match number of labels "
                f"per query ({[len(lbls) for lbls in labels]})."
            )
        batch_size, max_docs = len(queries), max(docs_per_query)
        pairs = [(query, document) for query, docs in zip(queries, docs_list, strict=True) for document in docs]

        mini_batch_size = self.mini_batch_size or batch_size
        if mini_batch_size <= 0:
            mini_batch_size = len(pairs)
        logits_list = []
        for start in range(0, len(pairs), mini_batch_size):
            tokens = self.model.preprocess(pairs[start : start + mini_batch_size], prompt=prompt, task=task)
            tokens = batch_to_device(tokens, self.model.device)
            logits_list.append(self.model(tokens)["scores"].view(-1))
        logits = self.activation_fn(torch.cat(logits_list, dim=0).float())

        device = logits.device
        doc_indices = torch.cat([torch.arange(n) for n in docs_per_query]).to(device)
        batch_indices = torch.repeat_interleave(torch.arange(batch_size), torch.tensor(docs_per_query)).to(device)
        logits_matrix = torch.zeros((batch_size, max_docs), device=device).index_put(
            (batch_indices, doc_indices), logits
        )
        labels_matrix = torch.zeros((batch_size, max_docs), device=device)
        labels_matrix[batch_indices, doc_indices] = torch.cat([lbls.to(device).float() for lbls in labels])
        mask = torch.zeros((batch_size, max_docs), dtype=torch.bool, device=device)
        mask[batch_indices, doc_indices] = True
        return approx_ndcg_loss(logits_matrix, labels_matrix, mask, alpha=self.alpha, standardize=self.standardize)

    def get_config_dict(self) -> dict[str, float | int | str | None]:
        return {
            "alpha": self.alpha,
            "standardize": self.standardize,
            "activation_fn": fullname(self.activation_fn),
            "mini_batch_size": self.mini_batch_size,
        }

    @property
    def citation(self) -> str:
        return """
@article{qin2010general,
    title={A general approximation framework for direct optimization of information retrieval measures},
    author={Qin, Tao and Liu, Tie-Yan and Li, Hang},
    journal={Information Retrieval},
    volume={13},
    number={4},
    pages={375--397},
    year={2010}
}
"""
