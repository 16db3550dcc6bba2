"""Layer truncation of a transformer, shared by truncated students and small re-rankers."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


def keep_first_layers(model: PreTrainedModel, layers: int) -> None:
    """Keep only the first ``layers`` encoder layers of a Hugging Face model, in place; embeddings, pooler and
    any head stay. Works on a bare encoder (``model.encoder``) and on a model with a head around its backbone
    (``model.<base_model_prefix>.encoder``), and keeps ``config.num_hidden_layers`` true so it saves and loads.
    """
    backbone = model if hasattr(model, "encoder") else getattr(model, model.base_model_prefix)
    encoder = backbone.encoder
    total = len(encoder.layer)
    if not 1 <= layers <= total:
        raise ValueError(f"cannot keep {layers} layers of a model that has {total}")
    encoder.layer = torch.nn.ModuleList(list(encoder.layer)[:layers])
    model.config.num_hidden_layers = layers
    if backbone is not model:
        backbone.config.num_hidden_layers = layers
