"""Train only the rows of a static table that the training texts use.

A static student distilled from an LLM embedder carries the teacher's whole vocabulary: EmbeddingGemma's
table is 262,144 x 768 (200M weights), of which Home Depot's alignment pool uses a few percent. AdamW updates
every weight of a dense parameter at every step, so on a CPU each step of alignment or refinement paid for
200M weights (1.35 steps/s here, 18 of Gemma's 23 alignment minutes). A row that no training text uses gets a
zero gradient at every step; with AdamW (no weight decay) its moments stay zero and it never moves. Training a
table of the used rows alone is therefore the same optimisation, with the optimizer's work cut to those rows.

Neither sentence-transformers nor PyTorch offers this: sparse gradients need ``SparseAdam``, which updates a
row's moments only when the row is in the batch (a different optimiser), and the trainer builds AdamW over
every parameter. Here the trainer gets a model whose table holds the used rows; a callback writes them back
into the full table after every step, so validation scoring and checkpoint selection
(:class:`~harnesslm.training.selection.KeepBest`) see the full student, always current.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import StaticEmbedding
from transformers import TrainerCallback

USED_SHARE_LIMIT = 0.5
"""Below this share of used rows the compact table pays off; above it the full table trains as before."""


class UsedRowsTable(StaticEmbedding):
    """A :class:`StaticEmbedding` over a subset of another table's rows, read through the same tokenizer.

    ``rows`` are the full table's token ids kept, in order; a text is tokenised as by the full table and its
    ids are mapped to positions in ``rows``. A text with a token outside ``rows`` is an error: the caller
    chose ``rows`` from the texts it trains on.
    """

    def __init__(self, full: StaticEmbedding, rows: np.ndarray) -> None:
        super().__init__(full.tokenizer, embedding_weights=full.embedding.weight.detach()[torch.from_numpy(rows)])
        self.embedding.mode = full.embedding.mode
        position = np.full(full.num_embeddings, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        self.register_buffer("_position", torch.from_numpy(position), persistent=False)

    def preprocess(self, inputs: list[str], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        features = super().preprocess(inputs, prompt=prompt, **kwargs)
        ids = self._position[features["input_ids"]]
        if bool((ids < 0).any()):
            raise ValueError("a training text uses a token outside the trained rows")
        features["input_ids"] = ids
        return features


class _WriteBack(TrainerCallback):
    """Copies the trained rows into the full table after every optimizer step and at the end of training."""

    def __init__(self, full: StaticEmbedding, part: UsedRowsTable, rows: np.ndarray) -> None:
        self.full, self.part, self.rows = full, part, torch.from_numpy(rows)

    def write_back(self) -> None:
        with torch.no_grad():
            self.full.embedding.weight.index_copy_(0, self.rows, self.part.embedding.weight.detach().cpu())

    def on_step_end(self, args, state, control, **kwargs):
        self.write_back()
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.write_back()
        return control


def used_rows(table: StaticEmbedding, texts: Sequence[str]) -> np.ndarray:
    """Sorted token ids of ``table`` that ``texts`` produce, read exactly as the table reads them."""
    used = np.zeros(table.num_embeddings, dtype=bool)
    for start in range(0, len(texts), 10_000):
        ids = table.preprocess(list(texts[start : start + 10_000]))["input_ids"].numpy()
        used[ids] = True
    return np.flatnonzero(used)


@contextmanager
def rows_in_use(student: SentenceTransformer, texts: Sequence[str]) -> Iterator[tuple[SentenceTransformer, list]]:
    """Yields ``(model, callbacks)`` to train in place of ``student`` on ``texts``.

    For a static student on a CPU whose ``texts`` use under half of its table, ``model`` shares every module
    of ``student`` but the table, which holds only the used rows, and ``callbacks`` write them back into
    ``student`` as training goes. Otherwise (a transformer student, a GPU, a small or well-used table)
    ``model`` is ``student`` itself and ``callbacks`` is empty.
    """
    table = student[0]
    if not isinstance(table, StaticEmbedding) or student.device.type != "cpu" or torch.cuda.is_available():
        yield student, []
        return
    rows = used_rows(table, texts)
    if len(rows) == 0 or len(rows) > USED_SHARE_LIMIT * table.num_embeddings:
        yield student, []
        return
    part = UsedRowsTable(table, rows)
    model = SentenceTransformer(modules=[part, *list(student)[1:]], device="cpu")
    # No write-back on leaving: a checkpoint callback after this one may have restored an earlier state.
    yield model, [_WriteBack(table, part, rows)]
