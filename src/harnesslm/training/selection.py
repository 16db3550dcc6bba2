"""Checkpoint selection on the validation split: a phase never leaves its student worse than it found it.

Every phase scores the student at evenly spaced steps by validation NDCG@10 against the teacher's index and,
when training ends, restores the best state it saw, counting the state it started from. So alignment keeps
the untrained (closed-form) start when gradient steps only overfit a small pool, and refinement keeps the
aligned student when contrastive training does not help. Test queries are never scored here.

``transformers``' own ``load_best_model_at_end`` needs checkpoints written to disk and an ``eval_dataset``
loss; what we select on is a retrieval metric over a frozen index, so a small callback holding the best
weights in memory does the job without disk writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings

logger = logging.getLogger(__name__)


class ValidationScorer:
    """NDCG@10 of a query encoder on the validation queries, searching a frozen item index."""

    def __init__(
        self,
        queries: Sequence[str],
        qrels: Mapping[str, Mapping[str, float]],
        index,
        scale: RelevanceScale,
        k: int = 10,
        batch_size: int = 256,
    ) -> None:
        self.queries = list(queries)
        self.qrels = {q: dict(qrels[q]) for q in self.queries}
        self.index = index
        self.scale = scale
        self.k = k
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.queries)

    def __call__(self, model: SentenceTransformer) -> float:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            embeddings = model.encode_query(  # the query prompt of a prompted teacher; students have none
                self.queries,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        model.train(was_training)
        ranked, _ = self.index.search(np.ascontiguousarray(embeddings, dtype=np.float32), self.k)
        report = evaluate_rankings(dict(zip(self.queries, ranked, strict=True)), self.qrels, self.scale, ndcg_k=self.k)
        return report.means[f"ndcg@{self.k}"]


@dataclass
class Selection:
    """What a phase kept and why: the score it started from, every scoring, the step it kept, and where it
    stopped (``planned_steps`` when it ran its whole budget)."""

    start_score: float
    best_score: float
    best_step: int
    history: list[tuple[int, float]] = field(default_factory=list)
    planned_steps: int | None = None
    stopped_step: int | None = None
    stop_reason: str | None = None

    @property
    def improved(self) -> bool:
        return self.best_step > 0

    def as_dict(self, start_label: str) -> dict:
        return {
            "validation_ndcg@10_start": self.start_score,
            "validation_ndcg@10": self.best_score,
            "kept_step": self.best_step,
            "kept": f"step {self.best_step}" if self.improved else start_label,
            "history": [[step, score] for step, score in self.history],
            "planned_steps": self.planned_steps,
            "stopped_step": self.stopped_step,
            "stopped": self.stop_reason,
        }


class KeepBest(TrainerCallback):
    """Scores the model every ``every`` steps and at the last step; restores the best weights at the end.

    The state the model is in when the callback is made is candidate step 0 with ``start_score``; a later
    checkpoint replaces it only when it scores strictly higher. With ``patience``, training stops early once
    that many scorings in a row gained less than ``min_delta`` over the best score so far (early stopping on
    validation, as ``transformers``' ``EarlyStoppingCallback`` does on an evaluation loss; that callback needs
    the trainer's own evaluation loop, and what is scored here is a retrieval metric over a frozen index).
    """

    def __init__(
        self,
        model: SentenceTransformer,
        scorer: ValidationScorer,
        every: int,
        start_score: float,
        patience: int | None = None,
        min_delta: float = 0.0,
    ) -> None:
        self.model = model
        self.scorer = scorer
        self.every = max(1, every)
        self.patience = patience
        self.min_delta = min_delta
        self.selection = Selection(start_score, start_score, 0, [(0, start_score)])
        self._best_state = _snapshot(model)
        self._stale = 0  # scorings in a row without a gain of min_delta

    def on_train_begin(self, args, state, control, **kwargs):
        self.selection.planned_steps = state.max_steps
        return control

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step % self.every == 0 or step >= state.max_steps:
            self._score(step)
            if self.patience is not None and self._stale >= self.patience and step < state.max_steps:
                control.should_training_stop = True
                self.selection.stop_reason = (
                    f"early: {self._stale} scorings in a row without a validation NDCG@10 gain of "
                    f"{self.min_delta:g} over {self.selection.best_score:.4f} (step {self.selection.best_step})"
                )
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if not self.selection.history or self.selection.history[-1][0] != state.global_step:
            self._score(state.global_step)
        if self.selection.best_step != state.global_step:
            self.model.load_state_dict(self._best_state)
        self.selection.stopped_step = state.global_step
        self.selection.stop_reason = self.selection.stop_reason or "ran its whole budget"
        self._best_state = {}
        return control

    def _score(self, step: int) -> None:
        if self.selection.history and self.selection.history[-1][0] == step:
            return
        score = self.scorer(self.model)
        self.selection.history.append((step, score))
        logger.info("validation NDCG@10 at step %d: %.4f", step, score)
        self._stale = 0 if score > self.selection.best_score + self.min_delta else self._stale + 1
        if score > self.selection.best_score:
            self.selection.best_score, self.selection.best_step = score, step
            self._best_state = _snapshot(self.model)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's weights (tensors cloned, so later training does not change it)."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def evaluation_interval(steps: int, evaluations: int) -> int:
    """Steps between validation scorings for ``evaluations`` evenly spaced ones."""
    return max(1, steps // max(1, evaluations))
