"""The alignment pool: texts from several sources, each with the teacher's query embedding as its target.

Alignment teaches the student the teacher's map from text to embedding and needs no labels, so every
source of query-like text helps: the judged training queries, the user's unlabeled query logs, the catalog
texts themselves, pseudo-queries cut from them and queries a small language model writes. This module
merges sources (first source wins a duplicated text, held-out queries never enter) and caches what is
costly to make: generated texts are kept as JSON keyed by everything that made them, and teacher
embeddings go through the embedding cache keyed by the teacher's weights and the texts.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from harnesslm.atomic import write_text
from harnesslm.models.prompts import prompt_of


@dataclass
class PoolSource:
    """One source of alignment texts with its teacher targets and what it cost to make."""

    name: str
    texts: list[str]
    targets: np.ndarray
    generate_seconds: float = 0.0
    encode_seconds: float = 0.0
    notes: dict = field(default_factory=dict)


@dataclass
class AlignmentPool:
    """Distinct texts and their teacher query embeddings, with the share each source contributed."""

    texts: list[str]
    targets: np.ndarray
    sources: dict[str, dict]

    def __len__(self) -> int:
        return len(self.texts)


def merge_sources(sources: Iterable[PoolSource], held_out: set[str]) -> AlignmentPool:
    """Concatenate sources in order; drop held-out queries and texts an earlier source already gave."""
    seen: set[str] = set(held_out)
    texts: list[str] = []
    rows: list[np.ndarray] = []
    summary: dict[str, dict] = {}
    for source in sources:
        keep = []
        for row, text in enumerate(source.texts):
            if text and text not in seen:
                seen.add(text)
                keep.append(row)
        texts += [source.texts[row] for row in keep]
        if keep:
            rows.append(source.targets[keep])
        summary[source.name] = {
            "offered": len(source.texts),
            "kept": len(keep),
            "generate_s": round(source.generate_seconds, 2),
            "encode_s": round(source.encode_seconds, 2),
            **source.notes,
        }
    targets = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
    return AlignmentPool(texts, targets, summary)


def encodes_alike(model: SentenceTransformer) -> bool:
    """Whether the model turns a query and a document into the same embedding (no distinct prompts).

    Then the catalog's item embeddings, already computed for the index, are also the teacher's *query*
    embeddings of the catalog texts, and alignment gets them at no cost.
    """
    return prompt_of(model, "query") == prompt_of(model, "document")


def take(items: Sequence, amount: int | None, seed: int) -> list:
    """``amount`` items drawn by a seeded shuffle (all of them for None), so the same seed gives the same draw
    and a larger amount a superset of a smaller one."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    chosen = order if amount is None else order[:amount]
    return [items[i] for i in chosen]


def cache_key(*parts: object) -> str:
    """A short hash of everything that determines a generated source (settings, inputs, model identity)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:20]


def cached_texts(path: Path, make: Callable[[], list[str]]) -> tuple[list[str], bool]:
    """Texts read from ``path`` (JSON) when present, else made and saved atomically; returns (texts, was_cached)."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8")), True
    texts = make()
    write_text(path, json.dumps(texts))
    return texts, False


def cached_mapping(path: Path) -> dict[str, list[str]]:
    """A JSON object of per-item generations, empty when absent (generation grows it item by item)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def with_repeated(pool: AlignmentPool, source: str, times: int) -> AlignmentPool:
    """``pool`` with the texts of ``source`` (the first rows it kept) appearing ``times`` times in all, a weight
    in the alignment loss; sources merge in order, so a source's rows are the block after the earlier ones'."""
    if times <= 1 or source not in pool.sources or not pool.sources[source]["kept"]:
        return pool
    names = list(pool.sources)
    start = sum(pool.sources[n]["kept"] for n in names[: names.index(source)])
    rows = slice(start, start + pool.sources[source]["kept"])
    texts = pool.texts + pool.texts[rows] * (times - 1)
    targets = np.concatenate([pool.targets, *[pool.targets[rows]] * (times - 1)])
    sources = {**pool.sources, source: {**pool.sources[source], "repeated": times}}
    return AlignmentPool(texts, targets, sources)
