"""The graph regulariser (RAMEN): each positive finds its neighbour in the judgments' graph, beside the base loss."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from stand_ins import ANCHORS, POSITIVES

from harnesslm.config import TeacherConfig
from harnesslm.losses import GraphRegularizedLoss
from harnesslm.losses.adversarial_contrastive import view_contrast
from harnesslm.losses.graph_regularized import NEIGHBOR_COLUMN, item_neighbors
from harnesslm.models.model_loading import load_model
from harnesslm.training.teacher_finetune import contrastive_dataset, teacher_loss

NEIGHBORS = ["makita 18v drill driver", "paint roller frame", "hose reel cart", "led flood light bulb"]


@pytest.fixture
def teacher(tiny_teacher):
    return load_model(str(tiny_teacher), max_seq_length=16)


def test_the_graph_term_is_added_to_the_base_loss_and_trains_the_encoder(teacher) -> None:
    base = MultipleNegativesRankingLoss(teacher, scale=20.0)
    features = [teacher.tokenize(texts) for texts in (ANCHORS, POSITIVES, NEIGHBORS)]
    plain = base(features[:2], None)
    off = GraphRegularizedLoss(teacher, base, weight=0.0)(features, None)
    assert torch.isclose(off, plain), "weight 0 is the base loss on the other columns"
    total = GraphRegularizedLoss(teacher, base, weight=1.0)(features, None)
    positives = teacher(features[1])["sentence_embedding"]
    neighbors = teacher(features[2])["sentence_embedding"]
    assert torch.isclose(total, plain + view_contrast(positives, neighbors, 0.05), atol=1e-5)
    total.backward()
    assert teacher[0].auto_model.get_input_embeddings().weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="neighbour column"):
        GraphRegularizedLoss(teacher, base)(features[:2], None)


def test_neighbors_come_from_the_judgments_graph() -> None:
    by_query = {"drill": {"a", "b"}, "drill kit": {"b", "c"}, "hose": {"h"}}
    neighbors = item_neighbors(by_query, ["a", "b", "c", "h", "a"], seed=1)
    assert neighbors[0] == "b" and neighbors[1] in {"a", "c"} and neighbors[2] == "b"
    assert neighbors[3] == "h", "an item judged alone is its own neighbour"
    assert neighbors == item_neighbors(by_query, ["a", "b", "c", "h", "a"], seed=1), "seeded"


def test_the_teacher_config_adds_the_neighbor_column_and_the_term(teacher) -> None:
    texts = {"a": "drill kit", "b": "drill driver", "n1": "garden hose"}
    dataset = contrastive_dataset(["drill", "drill"], ["a", "b"], [["n1"], ["n1"]], texts, 1, neighbors=["b", "a"])
    assert dataset.column_names == ["anchor", "positive", "negative_1", NEIGHBOR_COLUMN]
    assert dataset[NEIGHBOR_COLUMN] == ["drill driver", "drill kit"]
    config = TeacherConfig.model_validate({"schedule": {"steps": 1}, "graph_regularizer": {"weight": 0.2}})
    loss = teacher_loss(teacher, config)
    assert isinstance(loss, GraphRegularizedLoss) and loss.weight == 0.2
    assert not isinstance(
        teacher_loss(teacher, TeacherConfig.model_validate({"schedule": {"steps": 1}})), GraphRegularizedLoss
    )
