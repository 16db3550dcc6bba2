"""Query and document prompts: modern embedders prepend an instruction to each side (EmbeddingGemma's
``task: search result | query: `` and ``title: none | text: ``; e5's ``query: `` and ``passage: ``).

A teacher is used with its prompts wherever it encodes: queries through ``encode_query`` (the model's
``query`` prompt), catalog texts through ``encode_document`` (its ``document``, ``passage`` or ``corpus``
prompt), as sentence-transformers does. Students take the raw query: their alignment targets already carry
the teacher's query prompt. A teacher without prompts encodes as it always did.
"""

from __future__ import annotations

from typing import Any, Literal

from sentence_transformers import SentenceTransformer

Role = Literal["query", "document"]
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
"""The prompt names ``encode_document`` tries, in sentence-transformers' order."""


def prompt_of(model: Any, role: Role) -> str:
    """The text ``encode_query`` (``role="query"``) or ``encode_document`` prepends for ``model`` ("" if none)."""
    prompts = getattr(model, "prompts", None) or {}
    names = ("query",) if role == "query" else DOCUMENT_PROMPT_NAMES
    for name in names:
        if name in prompts:
            return prompts[name] or ""
    default = getattr(model, "default_prompt_name", None)
    return (prompts.get(default) or "") if default else ""


def set_prompts(model: SentenceTransformer, query: str | None = None, document: str | None = None) -> None:
    """Give ``model`` these query and document prompts (None keeps what it has), in place; saved with it.

    Each is a prompt text, or the name of one of the model's own prompts (``"Retrieval-query"``), whose text
    is then used.
    """
    own = dict(model.prompts or {})
    query = own.get(query, query) if query is not None else None
    document = own.get(document, document) if document is not None else None
    prompts = dict(own)
    if query is not None:
        prompts["query"] = query
    if document is not None:
        for name in DOCUMENT_PROMPT_NAMES:
            prompts.pop(name, None)
        prompts["document"] = document
    model.prompts = prompts


def encode_as(model: Any, texts: list[str], role: Role, **kwargs: Any) -> Any:
    """``model.encode_query`` / ``encode_document`` when the model has them (sentence-transformers), else
    ``model.encode`` (numpy and ONNX students have no prompts)."""
    method = getattr(model, f"encode_{role}", None) or model.encode
    return method(texts, **kwargs)


def training_prompts(model: SentenceTransformer, columns: list[str]) -> dict[str, str] | None:
    """Per-column prompts for contrastive training: the query prompt on ``anchor``, the document prompt on every
    other text column (positives and negatives; not the ``label``); None when the model has neither."""
    query, document = prompt_of(model, "query"), prompt_of(model, "document")
    if not query and not document:
        return None
    return {column: query if column == "anchor" else document for column in columns if column != "label"}
