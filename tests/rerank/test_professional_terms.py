"""Brands and model codes mined from a catalog, and the marks a relevance cross-encoder reads with each pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from harnesslm.rerank.professional_terms import FILE, ProfessionalTerms, is_model_code

CATALOG = [
    "Husky 26 in. 5-Drawer Tool Chest",
    "Husky 46 in. Mobile Workbench",
    "Husky 9-Piece Screwdriver Set",
    "Hampton Bay Century 52 in. Ceiling Fan",
    "Hampton Bay 3-Light Vanity in Brushed Nickel",
    "Hampton Bay Outdoor Patio Chair",
    "Hickory Hardware Craftsman 1-1/4 in. Chrome Cabinet Knob",
    "Hickory Hardware Bel Air 3 in. Pull",
    "Hickory Hardware Cottage 96 mm Pull",
    "Home Decorators Collection Hickory Natural 3/4 in. Solid Hardwood",
    "Millstead Hickory Vintage Engineered Flooring",
    "Bruce Hickory 5 in. Hardwood Flooring",
    "White 12-Gauge Wire 50 ft.",
    "DEWALT 20-Volt Max Drill Kit DCD771C2",
    "BEHR Premium 1-gal. #SC-141 Tugboat Deck Coating",
    "Moulding 808501 Primed Casing 3/4 in. x 8 ft.",
]


@pytest.fixture(scope="module")
def terms() -> ProfessionalTerms:
    return ProfessionalTerms.mine(CATALOG, min_items=3)


def test_brands_are_the_words_that_open_titles_and_seldom_appear_elsewhere(terms: ProfessionalTerms) -> None:
    assert "husky" in terms.brands and "hampton" in terms.brands
    assert "hickory" not in terms.brands, "hickory is a wood as often as it opens a title"
    assert "hickory hardware" in terms.brands, "the phrase opens its titles"
    assert "hampton bay" not in terms.brands, "a longer phrase whose first word is already a brand is not another"
    assert not any(b.startswith("white") for b in terms.brands), "opens one title only"


def test_model_codes_mix_letters_and_digits_and_are_not_sizes(terms: ProfessionalTerms) -> None:
    assert {"dcd771c2", "sc141", "808501"} <= terms.codes
    for word, code in [
        ("dcd771c2", True),
        ("sc-141", True),
        ("808501", True),
        ("DCD-771.C2", True),
        ("12-gauge", False),
        ("22in", False),
        ("1-gal.", False),
        ("3/4", False),
        ("t8", False),
        ("2017", False),
    ]:
        assert is_model_code(word) is code, word


def test_a_query_names_the_longest_brand_and_its_codes(terms: ProfessionalTerms) -> None:
    assert terms.found("hickory hardware chrome knob") == [("brand", "hickory hardware")]
    assert terms.found("hickory flooring") == []
    assert terms.found("husky tool chest dcd771") == [("brand", "husky"), ("model", "dcd771")]
    assert terms.found("paint sc-141") == [("model", "sc-141")]


def test_marks_say_whether_the_item_carries_each_term(terms: ProfessionalTerms) -> None:
    drill = "DEWALT 20-Volt Max Drill Kit DCD771C2"
    assert terms.mark("husky drill dcd771", drill) == "husky drill dcd771 | brand husky: no match | model dcd771: match"
    assert terms.mark("husky tool chest", CATALOG[0]) == "husky tool chest | brand husky: match"
    assert terms.mark("cordless drill", drill) == "cordless drill", "no term, no mark: the pair reads as before"
    assert terms.mark_pairs(["sc141 paint"], [CATALOG[14]]) == ["sc141 paint | model sc141: match"]


def test_terms_are_saved_with_a_model_and_a_bad_file_is_named(terms: ProfessionalTerms, tmp_path: Path) -> None:
    assert ProfessionalTerms.load(tmp_path) is None
    terms.save(tmp_path)
    assert ProfessionalTerms.load(tmp_path) == terms
    (tmp_path / FILE).write_text('{"brands": []}')
    with pytest.raises(ValueError, match=FILE):
        ProfessionalTerms.load(tmp_path)
