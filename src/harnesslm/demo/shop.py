"""A deterministic synthetic home-improvement shop: catalog, graded judgments and unlabeled queries.

Used by ``harness demo`` and by the test suite, so everything runs without the real data. The frames mirror
the Home Depot relevance data set (``products.csv``: product_uid, product_title; ``dev.csv``: search_term,
product_uid, relevance averaged over raters on 1..3), so the same loaders read both.

The shop is built to be *hard for an off-the-shelf sentence encoder but learnable*:

* shop jargon that never appears in a title ("romex" for NM-B wire, "weed eater" for string trimmers) is
  mapped consistently to one product type, so fine-tuning on training queries generalises to held-out ones;
* product lines are near-duplicates that differ in one attribute (gauge, size, finish), so the attribute
  words of a query decide between an exact match (3.0) and a substitute (2.33);
* hard negatives share words or the brand with the query but are the wrong type.

All randomness comes from ``random.Random`` streams seeded from ``seed``; the same arguments always give
byte-identical frames. The words themselves (brands, product types, jargon, misspellings) are in
:mod:`harnesslm.demo.shop_words`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from random import Random

import pandas as pd

from harnesslm.atomic import atomic_file
from harnesslm.demo.shop_words import (
    BRANDS,
    HEAD_QUERIES,
    HIDDEN_SLOTS,
    MISSPELLINGS,
    PRODUCT_TYPES,
    QUERY_KINDS,
    STOPWORDS,
    TYPES_BY_KEY,
    UNIT_RE,
    UNIT_WORDS,
    VALUE_ALIASES,
    ProductType,
)

__all__ = ["DemoShop", "make_demo_shop", "write_demo_shop"]

# --- grades (Home Depot scale: 1 irrelevant .. 3 exact, averaged over raters) -----------------------------

EXACT = 3.0
SUBSTITUTE_BRAND = 2.67  # right type and attributes, another brand
SUBSTITUTE = 2.33  # right type, one attribute differs
LOOSE_SUBSTITUTE = 2.0  # right type, several attributes differ
COMPLEMENT = 1.67  # related type bought together (wire nuts for wire)
IRRELEVANT = 1.0
_FIRST_UID = 200001

# --- public API ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoShop:
    """The three tables of a synthetic shop, in the Home Depot column layout."""

    catalog: pd.DataFrame  # product_uid, product_title, brand, category (str): the last two for search filters
    judgments: pd.DataFrame  # search_term (str), product_uid (str), relevance (float in [1, 3])
    unlabeled_queries: pd.DataFrame  # search_term (str): extra queries without judgments, for distillation


def make_demo_shop(n_products: int = 2000, n_queries: int = 600, n_unlabeled: int = 800, seed: int = 0) -> DemoShop:
    """Generate ``n_products`` products, ``n_queries`` judged queries and ``n_unlabeled`` unjudged ones.

    Each part draws from its own seeded stream, so the catalog does not change with the number of queries.
    """
    if n_products < 1 or n_queries < 0 or n_unlabeled < 0:
        raise ValueError("n_products must be >= 1 and query counts >= 0")
    products = _make_products(n_products, Random(f"demo-catalog-{seed}"))
    index = _ShopIndex.build(products)
    labeled = _draw_queries(index, n_queries, Random(f"demo-queries-{seed}"), exclude=set())
    judge_rng = Random(f"demo-judgments-{seed}")
    rows = [(spec.term, uid, grade) for spec in labeled for uid, grade in _judge(spec, index, judge_rng)]
    unlabeled = _draw_queries(
        index, n_unlabeled, Random(f"demo-unlabeled-{seed}"), exclude={spec.term for spec in labeled}
    )
    catalog = pd.DataFrame(
        {
            "product_uid": [p.uid for p in products],
            "product_title": [p.title for p in products],
            "brand": [p.brand for p in products],
            "category": [TYPES_BY_KEY[p.type_key].category for p in products],
        }
    )
    judgments = pd.DataFrame(
        {
            "search_term": [r[0] for r in rows],
            "product_uid": [r[1] for r in rows],
            "relevance": pd.Series([r[2] for r in rows], dtype="float64"),
        }
    )
    return DemoShop(
        catalog=catalog,
        judgments=judgments,
        unlabeled_queries=pd.DataFrame({"search_term": [spec.term for spec in unlabeled]}),
    )


def write_demo_shop(directory: str | Path, **kwargs: int) -> dict[str, Path]:
    """Write products.csv, judgments.csv and unlabeled_queries.csv into ``directory`` (created if needed).

    Each file is written to a temporary sibling and renamed into place, so a reader never sees half a file.
    ``kwargs`` go to :func:`make_demo_shop`.
    """
    shop = make_demo_shop(**kwargs)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    targets = {
        "catalog": (directory / "products.csv", shop.catalog),
        "judgments": (directory / "judgments.csv", shop.judgments),
        "unlabeled_queries": (directory / "unlabeled_queries.csv", shop.unlabeled_queries),
    }
    for path, frame in targets.values():
        with atomic_file(path) as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
    return {name: path for name, (path, _) in targets.items()}


# --- catalog ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Product:
    uid: str
    type_key: str
    brand: str
    attrs: tuple[tuple[str, str], ...]  # (slot, value) in slot order
    title: str


def _make_products(n_products: int, rng: Random) -> list[_Product]:
    """Allocate products to types by weight, sample product lines per type, shuffle and number them."""
    brands = {t.key: _type_brands(t, rng) for t in PRODUCT_TYPES}
    capacities = [len(brands[t.key]) * math.prod(len(v) for _, v in t.slots) for t in PRODUCT_TYPES]
    quotas = _allocate(n_products, [t.weight for t in PRODUCT_TYPES], capacities)
    drafts: list[tuple[ProductType, str, tuple[tuple[str, str], ...]]] = []
    for ptype, quota in zip(PRODUCT_TYPES, quotas, strict=True):
        sizes = [len(brands[ptype.key])] + [len(values) for _, values in ptype.slots]
        for combo in _sample_combos(sizes, quota, rng):
            attrs = tuple((slot, values[i]) for (slot, values), i in zip(ptype.slots, combo[1:], strict=True))
            drafts.append((ptype, brands[ptype.key][combo[0]], attrs))
    rng.shuffle(drafts)
    return [
        _Product(str(_FIRST_UID + i), ptype.key, brand, attrs, _noisy_title(_title(ptype, brand, attrs), rng))
        for i, (ptype, brand, attrs) in enumerate(drafts)
    ]


def _type_brands(ptype: ProductType, rng: Random) -> tuple[str, ...]:
    """3-4 of the category's brands carry this type, so brand names are informative but shared."""
    pool = BRANDS[ptype.category]
    return tuple(sorted(rng.sample(pool, min(len(pool), rng.randint(3, 4)))))


def _allocate(total: int, weights: Sequence[float], capacities: Sequence[int]) -> list[int]:
    """Split ``total`` proportionally to ``weights`` (largest remainder), never exceeding a capacity."""
    if total > sum(capacities):
        raise ValueError(f"n_products={total} exceeds the {sum(capacities)} distinct products on offer")
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    quotas = [min(int(r), c) for r, c in zip(raw, capacities, strict=True)]
    by_remainder = sorted(range(len(raw)), key=lambda i: (-(raw[i] - int(raw[i])), i))
    while sum(quotas) < total:
        for i in by_remainder:
            if sum(quotas) == total:
                break
            if quotas[i] < capacities[i]:
                quotas[i] += 1
    return quotas


def _sample_combos(sizes: Sequence[int], k: int, rng: Random) -> list[tuple[int, ...]]:
    """Pick ``k`` distinct (brand, slot...) index tuples, grown as product lines of near-duplicates.

    A base product is drawn at random, then 0-3 siblings that differ from it in exactly one attribute, which
    is how real catalogs look (one model in several sizes or finishes).
    """
    capacity = math.prod(sizes)
    if k * 2 >= capacity:
        return [_unrank(i, sizes) for i in rng.sample(range(capacity), k)]
    chosen: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    while len(chosen) < k:
        base = tuple(rng.randrange(s) for s in sizes)
        if base in seen:
            continue
        seen.add(base)
        chosen.append(base)
        for _ in range(rng.randint(0, 3)):
            dim = rng.randrange(1, len(sizes)) if len(sizes) > 1 else 0
            sibling = (*base[:dim], rng.randrange(sizes[dim]), *base[dim + 1 :])
            if len(chosen) < k and sibling not in seen:
                seen.add(sibling)
                chosen.append(sibling)
    return chosen


def _unrank(index: int, sizes: Sequence[int]) -> tuple[int, ...]:
    """Mixed-radix decode of ``index`` into one position per dimension."""
    digits = []
    for size in reversed(sizes):
        index, digit = divmod(index, size)
        digits.append(digit)
    return tuple(reversed(digits))


def _title(ptype: ProductType, brand: str, attrs: tuple[tuple[str, str], ...]) -> str:
    return ptype.template.format(brand=brand, noun=ptype.noun, **dict(attrs))


def _noisy_title(title: str, rng: Random) -> str:
    """Feed noise seen in real catalogs: HTML-escaped ampersands and stray double spaces."""
    if "&" in title and rng.random() < 0.5:
        title = title.replace("&", "&amp;")
    if rng.random() < 0.05:
        spaces = [i for i, ch in enumerate(title) if ch == " "]
        if spaces:
            at = rng.choice(spaces)
            title = title[:at] + " " + title[at:]
    return title


# --- queries ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ShopIndex:
    """Lookups the query generator and the judge need, built once per shop."""

    products: list[_Product]
    by_type: dict[str, list[int]]
    by_brand: dict[str, list[int]]
    complements: dict[str, tuple[str, ...]]  # symmetric
    confusers: dict[str, tuple[str, ...]]  # other types whose names share a word with this one

    @classmethod
    def build(cls, products: list[_Product]) -> _ShopIndex:
        by_type: dict[str, list[int]] = {}
        by_brand: dict[str, list[int]] = {}
        for i, product in enumerate(products):
            by_type.setdefault(product.type_key, []).append(i)
            by_brand.setdefault(product.brand, []).append(i)
        related: dict[str, set[str]] = {t.key: set(t.complements) for t in PRODUCT_TYPES}
        for t in PRODUCT_TYPES:
            for other in t.complements:
                related[other].add(t.key)
        complements = {k: tuple(sorted(v & by_type.keys())) for k, v in related.items()}
        name_words = {t.key: _words(t.noun) for t in PRODUCT_TYPES}
        confusers = {
            t.key: tuple(
                sorted(
                    o.key
                    for o in PRODUCT_TYPES
                    if o.key != t.key
                    and o.key in by_type
                    and o.key not in related[t.key]
                    and (name_words[o.key] & (_words(" ".join(t.short)) | name_words[t.key]))
                )
            )
            for t in PRODUCT_TYPES
        }
        return cls(products, by_type, by_brand, complements, confusers)


@dataclass(frozen=True)
class _QuerySpec:
    """A search term plus what it asks for, which is all the judge needs to grade any product."""

    term: str
    primary: tuple[str, ...]  # product types the query is for
    secondary: tuple[str, ...] = ()  # types loosely relevant to a vague query
    brand: str | None = None
    constraints: tuple[tuple[str, str], ...] = ()  # (slot, value) the query names
    seed: int | None = None  # index of the product the query was written from


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS and len(w) > 2}


def _draw_queries(index: _ShopIndex, n: int, rng: Random, exclude: set[str]) -> list[_QuerySpec]:
    """Draw ``n`` queries with distinct terms, none of them in ``exclude``."""
    specs: list[_QuerySpec] = []
    seen = set(exclude)
    kinds = [k for k, _ in QUERY_KINDS]
    weights = [w for _, w in QUERY_KINDS]
    attempts = 0
    while len(specs) < n:
        attempts += 1
        if attempts > 200 * (n + 10):
            raise ValueError(f"could not draw {n} distinct queries from this shop; ask for fewer")
        spec = _draw_query(index, rng.choices(kinds, weights)[0], rng)
        if spec is not None and spec.term not in seen:
            seen.add(spec.term)
            specs.append(spec)
    return specs


def _draw_query(index: _ShopIndex, kind: str, rng: Random) -> _QuerySpec | None:
    """One query of ``kind``, written from a random product; None when that product does not fit the kind."""
    if kind == "head":
        term = rng.choice(sorted(HEAD_QUERIES))
        primary, secondary = HEAD_QUERIES[term]
        primary = tuple(t for t in primary if t in index.by_type)
        secondary = tuple(t for t in secondary if t in index.by_type)
        return _QuerySpec(term, primary, secondary) if primary else None
    seed = rng.randrange(len(index.products))
    product = index.products[seed]
    ptype = TYPES_BY_KEY[product.type_key]
    misspell = kind == "misspelt"
    if misspell:
        kind = rng.choice(("type", "brand_type", "type_attr", "jargon"))
    if kind == "jargon" and not ptype.jargon:
        return None
    phrase = rng.choice(ptype.jargon if kind == "jargon" else ptype.short)
    if misspell:
        phrase = _misspell(phrase, rng)
        if phrase is None:
            return None
    queryable = [(slot, value) for slot, value in product.attrs if slot not in HIDDEN_SLOTS]
    n_attrs = {"type": 0, "brand_type": int(rng.random() < 0.3), "jargon": int(rng.random() < 0.6)}.get(
        kind, 1 + int(rng.random() < 0.35)
    )
    constraints = tuple(sorted(rng.sample(queryable, min(n_attrs, len(queryable)))))
    brand = product.brand if kind == "brand_type" else None
    attr_text = [_render_value(value, rng) for _, value in constraints]
    rng.shuffle(attr_text)
    parts = [brand.lower()] if brand else []
    parts += [phrase, *attr_text] if rng.random() < 0.25 else [*attr_text, phrase]
    term = " ".join(" ".join(parts).split())
    return _QuerySpec(term, (ptype.key,), brand=brand, constraints=constraints, seed=seed)


def _misspell(phrase: str, rng: Random) -> str | None:
    """Misspell one word of ``phrase``: a common real misspelling if known, else a keyboard slip."""
    words = phrase.split()
    known = [i for i, w in enumerate(words) if w in MISSPELLINGS]
    if known:
        i = rng.choice(known)
        words[i] = rng.choice(MISSPELLINGS[words[i]])
        return " ".join(words)
    long_words = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not long_words:
        return None
    i = rng.choice(long_words)
    words[i] = _slip(words[i], rng)
    return " ".join(words)


def _slip(word: str, rng: Random) -> str:
    """A typing error inside ``word`` (never the first letter): dropped, swapped or doubled letter."""
    at = rng.randrange(1, len(word) - 1)
    how = rng.randrange(3)
    if how == 0:
        return word[:at] + word[at + 1 :]
    if how == 1 and word[at] != word[at + 1]:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    return word[:at] + word[at] + word[at:]


def _render_value(value: str, rng: Random) -> str:
    """How a shopper types an attribute value: lower case, units written several ways, aliases."""
    if value in VALUE_ALIASES and rng.random() < 0.7:
        return rng.choice(VALUE_ALIASES[value])
    text = value.lower()
    text = re.sub(r"(\d+)-watt equivalent", lambda m: rng.choice((f"{m[1]} watt", f"{m[1]}w", m[0])), text)
    text = re.sub(r"(\d+)-pack", lambda m: rng.choice((f"{m[1]} pack", f"{m[1]}-pack", f"{m[1]}pk")), text)
    style = rng.random()
    if style < 0.3:
        text = UNIT_RE.sub(r"\1", text)
    elif style < 0.5:
        text = UNIT_RE.sub(lambda m: UNIT_WORDS[m[0]], text)
    if rng.random() < 0.3:
        text = text.replace("-", " ")
    return text


# --- judgments ----------------------------------------------------------------------------------------


def _judge(spec: _QuerySpec, index: _ShopIndex, rng: Random) -> list[tuple[str, float]]:
    """Grade 5-12 products for ``spec``: exact matches, substitutes, complements and hard negatives."""
    graded: dict[int, float] = {}
    if spec.seed is not None:
        _exact_and_substitutes(spec, index, rng, graded)
    else:
        _head_relevant(spec, index, rng, graded)
    taken_types = set(spec.primary) | set(spec.secondary)
    complement_types = sorted({c for t in spec.primary for c in index.complements[t]} - taken_types)
    if not complement_types and spec.seed is None:
        category = TYPES_BY_KEY[spec.primary[0]].category
        complement_types = [t.key for t in PRODUCT_TYPES if t.category == category and t.key in index.by_type]
        complement_types = [t for t in complement_types if t not in taken_types]
    for _ in range(rng.randint(0, 2) if complement_types else 0):
        i = rng.choice(index.by_type[rng.choice(complement_types)])
        graded.setdefault(i, _rater_noise(COMPLEMENT, rng))
    not_negative = taken_types | set(complement_types)
    wanted = len(graded) + max(5 - len(graded), min(rng.randint(2, 3), max(2, 12 - len(graded))))  # 5..12
    for _ in range(10 * wanted):
        if len(graded) >= wanted:
            break
        negative = _hard_negative(spec, index, not_negative, rng)
        if negative is None:  # only in a tiny shop that holds nothing but relevant types
            break
        graded.setdefault(negative, _rater_noise(IRRELEVANT, rng))
    rows = [(index.products[i].uid, grade) for i, grade in graded.items()]
    rng.shuffle(rows)
    return rows


def _exact_and_substitutes(spec: _QuerySpec, index: _ShopIndex, rng: Random, graded: dict[int, float]) -> None:
    """Products of the asked-for type, graded by how many of the query's constraints they miss."""
    same = index.by_type[spec.primary[0]]
    tiers: dict[float, list[int]] = {}
    for i in same:
        tiers.setdefault(_match_grade(index.products[i], spec), []).append(i)
    seed = spec.seed
    assert seed is not None
    graded[seed] = _rater_noise(EXACT, rng)
    exact = [i for i in tiers.get(EXACT, []) if i != seed]
    for i in rng.sample(exact, min(len(exact), rng.randint(0, 3))):
        graded[i] = _rater_noise(EXACT, rng)
    substitutes: list[int] = []
    # nearest first: near-duplicates that differ in one attribute are the hard, useful ones
    for grade in (SUBSTITUTE_BRAND, SUBSTITUTE, LOOSE_SUBSTITUTE):
        pool = tiers.get(grade, [])
        substitutes += rng.sample(pool, len(pool))
    for i in substitutes[: rng.randint(1, 4)]:
        graded[i] = _match_grade(index.products[i], spec)


def _match_grade(product: _Product, spec: _QuerySpec) -> float:
    """3.0 when brand and all named attributes match; one miss is a substitute, more a loose substitute."""
    attrs = dict(product.attrs)
    attr_misses = sum(attrs.get(slot) != value for slot, value in spec.constraints)
    brand_miss = spec.brand is not None and product.brand != spec.brand
    if attr_misses == 0:
        return SUBSTITUTE_BRAND if brand_miss else EXACT
    return SUBSTITUTE if attr_misses + brand_miss == 1 else LOOSE_SUBSTITUTE


def _head_relevant(spec: _QuerySpec, index: _ShopIndex, rng: Random, graded: dict[int, float]) -> None:
    """For a vague query: a few products of its main types (exact) and of its loosely related types."""
    for _ in range(rng.randint(2, 4)):
        graded.setdefault(rng.choice(index.by_type[rng.choice(spec.primary)]), _rater_noise(EXACT, rng))
    for _ in range(rng.randint(1, 3) if spec.secondary else 0):
        graded.setdefault(rng.choice(index.by_type[rng.choice(spec.secondary)]), SUBSTITUTE)


def _hard_negative(spec: _QuerySpec, index: _ShopIndex, excluded_types: set[str], rng: Random) -> int | None:
    """An irrelevant product that looks tempting: a type sharing words, the same brand, or the same aisle."""
    brand = spec.brand or (index.products[spec.seed].brand if spec.seed is not None else None)
    category = TYPES_BY_KEY[spec.primary[0]].category
    for _ in range(20):
        source = rng.random()
        confusers = [t for p in spec.primary for t in index.confusers[p] if t not in excluded_types]
        if source < 0.45 and confusers:
            i = rng.choice(index.by_type[rng.choice(confusers)])
        elif source < 0.75 and brand is not None:
            i = rng.choice(index.by_brand[brand])
        elif source < 0.9:
            same_aisle = [t.key for t in PRODUCT_TYPES if t.category == category and t.key in index.by_type]
            i = rng.choice(index.by_type[rng.choice(same_aisle)])
        else:
            i = rng.randrange(len(index.products))
        if index.products[i].type_key not in excluded_types:
            return i
    return next((i for i, p in enumerate(index.products) if p.type_key not in excluded_types), None)


def _rater_noise(grade: float, rng: Random) -> float:
    """Averaged rater grades are not perfectly clean: sometimes one of three raters disagreed."""
    roll = rng.random()
    if grade == EXACT and roll < 0.1:
        return SUBSTITUTE_BRAND
    if grade == COMPLEMENT and roll < 0.25:
        return 1.33 if roll < 0.15 else LOOSE_SUBSTITUTE
    if grade == IRRELEVANT and roll < 0.08:
        return 1.33
    return grade
