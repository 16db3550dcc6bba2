"""The demo shop's vocabulary: brands, product types, query phrasing and typing habits.

The tables are package data (``vocabulary.json``, read once at import) so that the words can be edited
without touching the generator in :mod:`harnesslm.demo.shop`. This module turns them back into the
immutable structures the generator uses: tuples, frozensets and :class:`ProductType` records.

In the JSON, a product type's slot is either its list of values or the name of a list in
``shared_slot_values`` (finishes, colors, sizes used by several types).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

__all__ = [
    "BRANDS",
    "HEAD_QUERIES",
    "HIDDEN_SLOTS",
    "MISSPELLINGS",
    "PRODUCT_TYPES",
    "QUERY_KINDS",
    "STOPWORDS",
    "TYPES_BY_KEY",
    "UNIT_RE",
    "UNIT_WORDS",
    "VALUE_ALIASES",
    "ProductType",
]


@dataclass(frozen=True)
class ProductType:
    """One kind of product: how its titles look and how shoppers ask for it."""

    key: str
    category: str
    noun: str  # fixed title phrase naming the type; always present verbatim in its titles
    template: str  # str.format template over {brand}, {noun} and the slot names
    short: tuple[str, ...]  # everyday query phrases whose words appear in the titles
    slots: tuple[tuple[str, tuple[str, ...]], ...]  # (slot, values) in title order
    jargon: tuple[str, ...] = ()  # shop jargon for this type that never appears in any title
    complements: tuple[str, ...] = ()
    weight: float = 1.0  # relative share of the catalog


def _load() -> dict[str, Any]:
    return json.loads((files("harnesslm.demo") / "vocabulary.json").read_text(encoding="utf-8"))


def _product_type(entry: dict[str, Any], shared: dict[str, tuple[str, ...]]) -> ProductType:
    slots = tuple(
        (slot, shared[values] if isinstance(values, str) else tuple(values)) for slot, values in entry["slots"].items()
    )
    return ProductType(
        key=entry["key"],
        category=entry["category"],
        noun=entry["noun"],
        template=entry["template"],
        short=tuple(entry["short"]),
        slots=slots,
        jargon=tuple(entry["jargon"]),
        complements=tuple(entry["complements"]),
        weight=float(entry["weight"]),
    )


_RAW = _load()
_SHARED: dict[str, tuple[str, ...]] = {name: tuple(values) for name, values in _RAW["shared_slot_values"].items()}

BRANDS: dict[str, tuple[str, ...]] = {category: tuple(names) for category, names in _RAW["brands"].items()}
"""Category -> the brands selling in it; each product type is carried by 3-4 of them."""

HIDDEN_SLOTS: frozenset[str] = frozenset(_RAW["hidden_slots"])
"""Slots that are printed in titles but never typed into a search box."""

PRODUCT_TYPES: tuple[ProductType, ...] = tuple(_product_type(entry, _SHARED) for entry in _RAW["product_types"])
TYPES_BY_KEY: dict[str, ProductType] = {t.key: t for t in PRODUCT_TYPES}

HEAD_QUERIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    term: (tuple(types["primary"]), tuple(types["secondary"])) for term, types in _RAW["head_queries"].items()
}
"""Vague head queries: primary types are exact (3.0), secondary types loosely relevant (2.33)."""

MISSPELLINGS: dict[str, tuple[str, ...]] = {word: tuple(typos) for word, typos in _RAW["misspellings"].items()}
"""Common real-world misspellings; words without an entry get a random keyboard slip."""

VALUE_ALIASES: dict[str, tuple[str, ...]] = {value: tuple(forms) for value, forms in _RAW["value_aliases"].items()}
"""Query forms for attribute values that shoppers shorten."""

QUERY_KINDS: tuple[tuple[str, float], ...] = tuple((kind, float(w)) for kind, w in _RAW["query_kinds"].items())
"""Kinds of generated queries and their relative frequency."""

STOPWORDS: frozenset[str] = frozenset(_RAW["stopwords"])
"""Words too common to tell product types apart (ignored when comparing type names)."""

UNIT_WORDS: dict[str, str] = dict(_RAW["unit_words"])
"""Abbreviated units in titles (``in.``) -> how shoppers spell them out (``inch``)."""

UNIT_RE: re.Pattern[str] = re.compile(r"\b(" + "|".join(re.escape(u.removesuffix(".")) for u in UNIT_WORDS) + r")\.")
"""An abbreviated unit of :data:`UNIT_WORDS`, the unit without its dot as group 1."""
