"""One place that drives sentence-transformers' trainer, so every phase trains the same way.

The trainer (a ``transformers.Trainer``) gives mixed precision, gradient accumulation and multi-GPU data
parallelism for free: the same step runs under ``torchrun --nproc_per_node N`` or ``accelerate launch``.
"""

from __future__ import annotations

import logging
import tempfile
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
from torch import nn
from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from harnesslm.progress import ProgressLines, interactive

if TYPE_CHECKING:
    from harnesslm.config import Schedule

logger = logging.getLogger(__name__)


def _log_metrics(state, logs: dict | None) -> None:
    """Send the trainer's periodic metrics (loss, learning rate, ...) to the log, not the terminal."""
    if logs and state.is_world_process_zero:
        values = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"}
        logger.info("step %d/%d: %s", state.global_step, state.max_steps, values)


class _ProgressBar(ProgressCallback):
    """transformers' progress bar without the ``{'loss': ...}`` lines it writes under it: those go to the log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        _log_metrics(state, logs)


class _MetricsLog(TrainerCallback):
    """Replaces ``PrinterCallback`` (which prints every metrics dict) when there is no progress bar."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        _log_metrics(state, logs)


class _ProgressLines(_MetricsLog):
    """Timed progress lines (:class:`harnesslm.progress.ProgressLines`) where the output is not a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.lines: ProgressLines | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.lines = ProgressLines(self.label, state.max_steps, unit="steps")
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.lines is not None:
            self.lines.advance(state.global_step - self.lines.done)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.lines is not None:
            self.lines.close()
        return control


def _quiet(trainer, progress: bool, label: str = "training"):
    """Keep the terminal to progress bars (timed lines when it is not a terminal): training metrics are logged
    (a run writes them to its log file)."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if not progress:
        trainer.add_callback(_MetricsLog())
    else:
        trainer.add_callback(_ProgressBar() if interactive() else _ProgressLines(label))
    return trainer


def schedule_args(schedule: Schedule, rows: int | None = None) -> dict[str, Any]:
    """A config :class:`~harnesslm.config.Schedule` as the keyword arguments of :func:`train`; with ``rows``
    (the phase's training rows), an ``epochs`` budget caps the steps."""
    return {
        "max_steps": schedule.steps if rows is None else schedule.steps_for(rows),
        "batch_size": schedule.batch_size,
        "learning_rate": schedule.learning_rate,
        "warmup_ratio": schedule.warmup_ratio,
        "seed": schedule.seed,
    }


def train_on_schedule(
    model: SentenceTransformer,
    dataset: Dataset,
    loss: nn.Module,
    schedule: Schedule,
    *,
    progress: bool = True,
    callbacks: list | None = None,
    prompts: dict[str, str] | None = None,
    label: str = "training",
) -> dict[str, float]:
    """:func:`train` over ``dataset`` shuffled with the schedule's seed, for the steps ``schedule`` gives that
    many rows (``schedule_args``): how the teacher, alignment and refinement all train."""
    return train(
        model,
        dataset.shuffle(seed=schedule.seed),
        loss,
        **schedule_args(schedule, len(dataset)),
        progress=progress,
        callbacks=callbacks,
        prompts=prompts,
        label=label,
    )


def train(
    model: SentenceTransformer,
    dataset: Dataset,
    loss: nn.Module,
    *,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    warmup_ratio: float = 0.1,
    seed: int = 0,
    no_duplicates: bool = True,
    progress: bool = True,
    callbacks: list | None = None,
    prompts: dict[str, str] | None = None,
    label: str = "training",
) -> dict[str, float]:
    """Train ``model`` in place for ``max_steps`` optimizer steps; returns the trainer's final metrics.

    ``prompts`` maps a dataset column to the text put before each of its texts (sentence-transformers'
    training ``prompts``): a prompted teacher trains on queries and items the way it will encode them.

    ``no_duplicates`` keeps a text from appearing twice in one batch, so in-batch negatives are never a
    row's own positive written again. ``callbacks`` are ``transformers`` trainer callbacks (for example
    :class:`~harnesslm.training.selection.KeepBest`). Checkpoints are not written: each phase is short, and a
    phase that is interrupted is rerun from its start (its output only appears once it finished).
    """
    if len(dataset) < batch_size:
        batch_size = max(1, len(dataset))
    with tempfile.TemporaryDirectory(prefix="harnesslm-trainer-") as output_dir:
        args = SentenceTransformerTrainingArguments(
            output_dir=output_dir,
            batch_sampler=BatchSamplers.NO_DUPLICATES if no_duplicates else BatchSamplers.BATCH_SAMPLER,
            prompts=prompts,
            **_schedule(len(dataset), max_steps, batch_size, learning_rate, warmup_ratio, seed, progress),
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks or None
        )
        _quiet(trainer, progress, label)
        result = trainer.train()
    model.eval()
    return {key: float(value) for key, value in result.metrics.items() if isinstance(value, int | float)}


def train_cross_encoder(
    model: CrossEncoder,
    dataset: Dataset,
    loss: nn.Module,
    *,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    warmup_ratio: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """The cross-encoder twin of :func:`train`: same schedule, no checkpoints, returns final metrics."""
    if len(dataset) < batch_size:
        batch_size = max(1, len(dataset))
    with tempfile.TemporaryDirectory(prefix="harnesslm-trainer-") as output_dir:
        args = CrossEncoderTrainingArguments(
            output_dir=output_dir,
            **_schedule(len(dataset), max_steps, batch_size, learning_rate, warmup_ratio, seed, progress),
        )
        trainer = _quiet(CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss), progress)
        result = trainer.train()
    model.eval()
    return {key: float(value) for key, value in result.metrics.items() if isinstance(value, int | float)}


def _schedule(
    rows: int, max_steps: int, batch_size: int, learning_rate: float, warmup_ratio: float, seed: int, progress: bool
) -> dict:
    """Training arguments shared by both trainers: fixed steps, linear warm-up, no checkpoints, no reporting."""
    return {
        "max_steps": max_steps,
        "per_device_train_batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_steps": int(warmup_ratio * max_steps),
        "seed": seed,
        "data_seed": seed,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": max(1, max_steps // 10),
        "disable_tqdm": not (progress and interactive()),
        "dataloader_drop_last": rows >= 2 * batch_size,
        "dataloader_pin_memory": False,
        "bf16": _gpu_bf16(),  # mixed precision on a GPU that has it; a CPU trains in float32 as before
    }


def _gpu_bf16() -> bool:
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
