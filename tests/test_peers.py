"""The ported pyNIFE method of benchmarks/peers.py: each row is the teacher's embedding of its token alone, and
its loss is pyNIFE's cosine loss cut to the Matryoshka width."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from harnesslm.models.model_loading import load_model

ROOT = Path(__file__).resolve().parents[1]


def _peers():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import peers
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return peers


def test_pynife_rows_are_the_teachers_embedding_of_each_token_alone(tiny_teacher: Path) -> None:
    peers = _peers()
    teacher = load_model(str(tiny_teacher))
    ids = [5, 17, 200, 201]
    rows = peers.pynife_rows(teacher, ids, batch_size=3)  # two batches, and padding inside the first
    for token, row in zip(ids, rows, strict=True):
        alone = [teacher.tokenizer.cls_token_id, token, teacher.tokenizer.sep_token_id]  # BERT: [CLS] t [SEP]
        features = {"input_ids": torch.tensor([alone]), "attention_mask": torch.ones(1, len(alone), dtype=torch.long)}
        with torch.no_grad():
            expected = teacher.forward(features)["sentence_embedding"][0]
        assert torch.allclose(row, expected, atol=1e-5)


def test_pynifes_cosine_loss_cuts_the_teacher_to_the_students_width(tiny_teacher: Path) -> None:
    peers = _peers()

    class Fixed(torch.nn.Module):
        def forward(self, features):
            return {"sentence_embedding": features["x"]}

    loss = peers._CosineLoss(Fixed())
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0, 5.0], [1.0, 0.0, -3.0]])  # the third dimension is cut off
    assert torch.isclose(loss([{"x": student}], teacher), torch.tensor(0.5))  # mean of 1 - 1 and 1 - 0
