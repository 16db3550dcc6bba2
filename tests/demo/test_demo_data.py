"""The synthetic demo shop: deterministic, well-formed, Home Depot shaped, and hard in the intended ways."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

from harnesslm.demo import shop_words as vocabulary
from harnesslm.demo.shop import DemoShop, make_demo_shop, write_demo_shop

RELEVANT = 2.33  # Home Depot convention: averaged grade >= 2.33 counts as relevant


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return make_demo_shop()


@pytest.fixture(scope="module")
def titled(shop: DemoShop) -> pd.DataFrame:
    """Judgments joined with their (unescaped, lower-cased) product titles."""
    joined = shop.judgments.merge(shop.catalog, on="product_uid", how="left", validate="many_to_one")
    return joined.assign(title=[_clean(t) for t in joined.product_title])


def _clean(title: str) -> str:
    """Undo the feed noise (HTML entities, double spaces) and lower-case."""
    return " ".join(html.unescape(title).lower().split())


def _type_of(title: str) -> str:
    """The product type of a cleaned title: the type whose fixed noun phrase it contains (longest wins)."""
    nouns = [(len(t.noun), t.key) for t in vocabulary.PRODUCT_TYPES if t.noun.lower() in title]
    return max(nouns)[1]


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text) is not None


# --- determinism --------------------------------------------------------------------------------------


def test_same_arguments_give_identical_frames() -> None:
    a = make_demo_shop(n_products=300, n_queries=80, n_unlabeled=60, seed=7)
    b = make_demo_shop(n_products=300, n_queries=80, n_unlabeled=60, seed=7)
    for name in ("catalog", "judgments", "unlabeled_queries"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).to_csv(index=False) == getattr(b, name).to_csv(index=False)


def test_different_seed_gives_a_different_shop(shop: DemoShop) -> None:
    other = make_demo_shop(seed=1)
    assert set(other.catalog.product_title) != set(shop.catalog.product_title)
    assert set(other.judgments.search_term) != set(shop.judgments.search_term)
    assert set(other.unlabeled_queries.search_term) != set(shop.unlabeled_queries.search_term)


def test_catalog_does_not_depend_on_query_counts(shop: DemoShop) -> None:
    fewer = make_demo_shop(n_queries=10, n_unlabeled=0)
    pd.testing.assert_frame_equal(fewer.catalog, shop.catalog)
    assert len(fewer.judgments.search_term.unique()) == 10
    assert fewer.unlabeled_queries.empty and list(fewer.unlabeled_queries.columns) == ["search_term"]


# --- schema and integrity -----------------------------------------------------------------------------


def test_schema_and_sizes(shop: DemoShop) -> None:
    assert list(shop.catalog.columns) == ["product_uid", "product_title", "brand", "category"]
    assert {"electrical", "plumbing", "tools"} <= set(shop.catalog.category)
    assert all(b.lower() in t.lower() for b, t in zip(shop.catalog.brand, shop.catalog.product_title, strict=True))
    assert list(shop.judgments.columns) == ["search_term", "product_uid", "relevance"]
    assert list(shop.unlabeled_queries.columns) == ["search_term"]
    for frame, column in [
        (shop.catalog, "product_uid"),
        (shop.catalog, "product_title"),
        (shop.judgments, "search_term"),
        (shop.judgments, "product_uid"),
        (shop.unlabeled_queries, "search_term"),
    ]:
        assert pd.api.types.is_string_dtype(frame[column]), column
        assert all(isinstance(v, str) for v in frame[column]), column
    assert shop.judgments.relevance.dtype == "float64"
    assert len(shop.catalog) == 2000
    assert shop.judgments.search_term.nunique() == 600
    assert len(shop.unlabeled_queries) == 800


def test_ids_titles_and_references(shop: DemoShop) -> None:
    uids = shop.catalog.product_uid
    assert uids.is_unique
    assert uids.str.fullmatch(r"2\d{5}").all()
    assert uids.iloc[:3].tolist() == ["200001", "200002", "200003"]
    titles = shop.catalog.product_title
    assert (titles.str.strip().str.len() > 10).all()
    assert set(shop.judgments.product_uid) <= set(uids)
    assert not shop.judgments.duplicated(["search_term", "product_uid"]).any()


def test_grades_use_the_home_depot_scale(shop: DemoShop) -> None:
    grades = shop.judgments.relevance
    assert grades.between(1.0, 3.0).all()
    assert {3.0, 2.67, 2.33, 1.67, 1.0} <= set(grades)  # exact, substitute, complement, irrelevant
    shares = grades.round(2).value_counts(normalize=True)
    for tier in (3.0, 2.33, 1.67, 1.0):
        assert shares[tier] > 0.05, tier


def test_every_query_has_enough_judgments_and_a_relevant_item(shop: DemoShop) -> None:
    per_query = shop.judgments.groupby("search_term").relevance
    assert (per_query.size() >= 5).all()
    assert (per_query.size() <= 12).all()
    assert (per_query.max() >= RELEVANT).all()
    assert (per_query.min() < RELEVANT).all()  # every query also has negatives to rank below


def test_unlabeled_queries_are_distinct_and_unseen(shop: DemoShop) -> None:
    unlabeled = shop.unlabeled_queries.search_term
    assert unlabeled.is_unique
    assert (unlabeled.str.strip() == unlabeled).all() and (unlabeled.str.len() > 0).all()
    assert not set(unlabeled) & set(shop.judgments.search_term)
    jargon = [j for t in vocabulary.PRODUCT_TYPES for j in t.jargon]
    assert sum(any(_has_phrase(q, j) for j in jargon) for q in unlabeled) > 50  # same generator, same mix


def test_feed_noise_like_real_catalogs(shop: DemoShop) -> None:
    titles = shop.catalog.product_title
    assert titles.str.contains("&amp;", regex=False).any()
    assert titles.str.contains(" & ", regex=False).any()
    assert titles.str.contains("  ", regex=False).any()


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_products"):
        make_demo_shop(n_products=0)
    with pytest.raises(ValueError, match="exceeds"):
        make_demo_shop(n_products=10_000_000, n_queries=0, n_unlabeled=0)


def test_small_shop_still_well_formed() -> None:
    small = make_demo_shop(n_products=60, n_queries=30, n_unlabeled=20, seed=3)
    assert len(small.catalog) == 60 and small.judgments.search_term.nunique() == 30
    assert set(small.judgments.product_uid) <= set(small.catalog.product_uid)
    assert (small.judgments.groupby("search_term").relevance.max() >= RELEVANT).all()


# --- query kinds: what makes the shop hard but learnable ----------------------------------------------


def test_vocabulary_tables_are_consistent() -> None:
    keys = {t.key for t in vocabulary.PRODUCT_TYPES}
    assert len(keys) == len(vocabulary.PRODUCT_TYPES)
    assert len({t.category for t in vocabulary.PRODUCT_TYPES}) >= 8
    for ptype in vocabulary.PRODUCT_TYPES:
        assert set(re.findall(r"{(\w+)}", ptype.template)) == {"brand", "noun"} | {s for s, _ in ptype.slots}
        assert set(ptype.complements) <= keys
    for primary, secondary in vocabulary.HEAD_QUERIES.values():
        assert set(primary) | set(secondary) <= keys
    owners: dict[str, str] = {}
    for ptype in vocabulary.PRODUCT_TYPES:
        for phrase in ptype.jargon:
            assert owners.setdefault(phrase, ptype.key) == ptype.key, f"{phrase!r} means two types"
    brands_per_category = [set(b) for b in vocabulary.BRANDS.values()]
    assert any(a & b for i, a in enumerate(brands_per_category) for b in brands_per_category[i + 1 :])


def test_jargon_never_appears_in_titles_and_always_means_one_type(shop: DemoShop, titled: pd.DataFrame) -> None:
    catalog_text = "\n".join(_clean(t) for t in shop.catalog.product_title)
    queries = titled.search_term.unique()
    used = 0
    for ptype in vocabulary.PRODUCT_TYPES:
        for phrase in ptype.jargon:
            assert not _has_phrase(catalog_text, phrase), phrase
            hits = titled[titled.search_term.isin([q for q in queries if _has_phrase(q, phrase)])]
            relevant = hits[hits.relevance >= RELEVANT]
            used += not hits.empty
            # consistent: whatever else the query says, relevant items are always of the jargon's type
            assert all(ptype.noun.lower() in title for title in relevant.title), (
                phrase,
                relevant.title.tolist(),
            )
            assert not any(_has_phrase(title, phrase) for title in relevant.title)
    assert used >= 30  # many jargon phrases are exercised, so they can be learned from training queries
    assert {"romex", "weed eater", "drop cloth"} <= {
        p for t in vocabulary.PRODUCT_TYPES for p in t.jargon if any(_has_phrase(q, p) for q in queries)
    }


def test_misspelt_queries_exist_and_are_answerable(shop: DemoShop, titled: pd.DataFrame) -> None:
    catalog_words = set(re.findall(r"[a-z0-9]+", " ".join(_clean(t) for t in shop.catalog.product_title)))
    typo_to_word = {typo: word for word, typos in vocabulary.MISSPELLINGS.items() for typo in typos}
    misspelt = [q for q in titled.search_term.unique() if set(q.split()) & typo_to_word.keys()]
    assert len(misspelt) >= 20
    assert not typo_to_word.keys() & catalog_words  # the misspelling is never a catalog word
    best = titled.groupby("search_term").relevance.max()
    assert (best[misspelt] >= RELEVANT).all()


def test_brand_queries_reward_the_named_brand(titled: pd.DataFrame) -> None:
    brands = {b.lower() for names in vocabulary.BRANDS.values() for b in names}
    branded = titled[[q.split()[0] in brands for q in titled.search_term]]
    assert branded.search_term.nunique() >= 40
    exact = branded[branded.relevance == 3.0]
    assert all(t.startswith(q.split()[0]) for q, t in zip(exact.search_term, exact.title, strict=True))
    other_brand = branded[branded.relevance == 2.67]
    assert any(not t.startswith(q.split()[0]) for q, t in zip(other_brand.search_term, other_brand.title, strict=True))


def test_attributes_decide_between_near_duplicates(titled: pd.DataFrame) -> None:
    """Many queries have an exact item and a substitute whose titles differ in only an attribute or two."""

    def words(title: str) -> set[str]:
        return set(title.split())

    close = 0
    for _, group in titled.groupby("search_term"):
        exact = [words(t) for t in group.title[group.relevance == 3.0]]
        subs = [words(t) for t in group.title[group.relevance.isin([2.33, 2.0])]]
        close += any(len(e ^ s) <= 4 for e in exact for s in subs)
    assert close >= 100


def test_vague_head_queries_and_complements(titled: pd.DataFrame) -> None:
    heads = set(titled.search_term) & set(vocabulary.HEAD_QUERIES)
    assert len(heads) >= 5
    paint = titled[titled.search_term == "paint"]
    if not paint.empty:
        assert all("paint" in t for t in paint.title[paint.relevance == 3.0])


def test_complements_and_negatives_are_other_types(titled: pd.DataFrame) -> None:
    """Complements (1.67) are related types, like wire nuts for wire; negatives are never the asked type."""
    related = {t.key: set(t.complements) for t in vocabulary.PRODUCT_TYPES}
    for ptype in vocabulary.PRODUCT_TYPES:
        for other in ptype.complements:
            related[other].add(ptype.key)
    specific = titled[~titled.search_term.isin(vocabulary.HEAD_QUERIES)]
    judged = specific.assign(type=[_type_of(t) for t in specific.title])
    complements = 0
    for _, group in judged.groupby("search_term"):
        asked = set(group.type[group.relevance == 3.0])
        assert len(asked) <= 1
        if not asked:
            continue
        (asked_type,) = asked
        for grade, kind in zip(group.relevance, group.type, strict=True):
            if grade == 1.67:
                assert kind in related[asked_type]
                complements += 1
            if grade == 1.0:
                assert kind != asked_type
    assert complements >= 50


def test_hard_negatives_share_words_or_brand(titled: pd.DataFrame) -> None:
    """Irrelevant items are mostly tempting ones: a shared word with the query or a relevant item's brand."""
    tempting = 0
    negatives = 0
    for query, group in titled.groupby("search_term"):
        query_words = {w for w in re.findall(r"[a-z]+", query) if len(w) > 3}
        relevant_brands = {t.split()[0] for t in group.title[group.relevance >= RELEVANT]}
        for title in group.title[group.relevance == 1.0]:
            negatives += 1
            shares_word = bool(query_words & set(re.findall(r"[a-z]+", title)))
            tempting += shares_word or title.split()[0] in relevant_brands
    assert tempting / negatives > 0.4


# --- writing ------------------------------------------------------------------------------------------


def test_write_demo_shop_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "demo"
    paths = write_demo_shop(target, n_products=200, n_queries=40, n_unlabeled=30, seed=2)
    assert set(paths) == {"catalog", "judgments", "unlabeled_queries"}
    assert {p.name for p in paths.values()} == {"products.csv", "judgments.csv", "unlabeled_queries.csv"}
    assert sorted(p.name for p in target.iterdir()) == [
        "judgments.csv",
        "products.csv",
        "unlabeled_queries.csv",
    ]
    expected = make_demo_shop(n_products=200, n_queries=40, n_unlabeled=30, seed=2)
    as_text = {"product_uid": str, "product_title": str, "search_term": str}
    for name, path in paths.items():
        read = pd.read_csv(path, dtype=as_text, keep_default_na=False)
        pd.testing.assert_frame_equal(read, getattr(expected, name), check_dtype=False)
    assert paths["catalog"].read_text(encoding="utf-8").startswith("product_uid,product_title,brand,category\n200001,")


def test_failed_write_keeps_old_files_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_demo_shop(tmp_path, n_products=100, n_queries=20, n_unlabeled=10)
    before = {name: path.read_bytes() for name, path in paths.items()}

    def broken_to_csv(self: pd.DataFrame, handle: object, **kwargs: object) -> None:
        handle.write("half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        write_demo_shop(tmp_path, n_products=100, n_queries=20, n_unlabeled=10, seed=5)
    assert {name: path.read_bytes() for name, path in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "judgments.csv",
        "products.csv",
        "unlabeled_queries.csv",
    ]
