"""Professional terms (brands and model codes) found in the catalog, shown to the relevance cross-encoder.

After the Alibaba relevance paper's "professional term recognition": a product search query that names a brand
("husky tool chest") or a model code ("dcd771") is relevant only to items of that brand or model, however close
the rest of the wording is. A small cross-encoder fine-tuned on a few thousand judged queries sees too few of
each brand to learn that from the raw text, so the terms are found in the catalog once and each (query, item)
pair is marked with whether the item carries each term the query names::

    husky tool chest | brand husky: match
    dewalt dcd771 drill | brand dewalt: match | model dcd771: no match

The marks ride on the query side of the pair, in words the model's tokenizer already knows, so no new
vocabulary or head is needed; training and scoring read the same marked pairs. No library mines brands and
model codes from a product catalog, hence this module.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harnesslm.atomic import write_text

FILE = "professional_terms.json"
"""Where a cross-encoder folder keeps its terms; a folder without it reads unmarked pairs."""

_WORD = re.compile(r"[a-z0-9][a-z0-9\-./#]*[a-z0-9]|[a-z0-9]")
_QUANTITY = re.compile(r"^\d+(?:[./]\d+)*-?[a-z]+\.?$")  # 12-gauge, 1-gal., 22in, 4-pack: sizes, not models
_LETTER = re.compile(r"[a-z]")
_DIGIT = re.compile(r"\d")
_BRAND = re.compile(r"[a-z][a-z\-&'.]{2,}(?: [a-z][a-z\-&'.]*)*")  # words of letters, the first of 3 or more


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``, inner hyphens, dots, slashes and # kept (``sc-141``, ``3/4``)."""
    return _WORD.findall(text.lower().replace("&amp;", "&"))


def code_key(word: str) -> str:
    """A model code without its separators: ``DCD-771.C2`` and ``dcd771c2`` are the same code."""
    return re.sub(r"[\-./#]", "", word.lower())


def is_model_code(word: str, min_length: int = 4) -> bool:
    """A word that names one product rather than a size: letters and digits mixed (``dcd771c2``, ``sc-141``),
    or five digits or more (``808501``), and not a quantity with its unit (``12-gauge``, ``22in``)."""
    key = code_key(word)
    if len(key) < min_length or _QUANTITY.match(word.lower()):
        return False
    has_digit = bool(_DIGIT.search(key))
    return has_digit and (bool(_LETTER.search(key)) or len(key) >= 5)


@dataclass
class ProfessionalTerms:
    """The catalog's brands (lower-cased, one to three words) and model codes (separator-free keys).

    Args:
        brands: brand phrases as they open titles (``husky``, ``hickory hardware``); the shortest start of a
            brand's titles that qualifies stands for it (``hampton`` for Hampton Bay).
        codes: model codes seen in the catalog's titles.

    Example:
        ::

            terms = ProfessionalTerms.mine(catalog_titles)
            terms.mark("dewalt drill", "DEWALT 20-Volt Max Drill DCD771C2")  # 'dewalt drill | brand dewalt: match'
    """

    brands: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)

    @classmethod
    def mine(
        cls, texts: Iterable[str], min_items: int = 3, min_start_share: float = 0.7, max_brand_words: int = 3
    ) -> ProfessionalTerms:
        """Brands are the phrases of one to ``max_brand_words`` words that open at least ``min_items`` titles and,
        of all the titles that hold them, open at least ``min_start_share`` (``Husky`` opens titles; ``White``
        and ``Hickory`` appear anywhere, but ``Hickory Hardware`` opens them). A phrase is kept only when no
        shorter start of it is a brand already: ``hampton`` names Hampton Bay, and ``hampton bay century``, a
        product line, is not a second brand. Model codes are the titles' code-shaped words
        (:func:`is_model_code`)."""
        titles = [words(t) for t in texts]
        codes = {code_key(w) for t in titles for w in t if is_model_code(w)}
        brands: set[str] = set()
        for n in range(1, max_brand_words + 1):
            opening = Counter(" ".join(t[:n]) for t in titles if len(t) >= n)
            candidates = {p for p, c in opening.items() if c >= min_items and _BRAND.fullmatch(p)}
            anywhere = Counter(
                p for t in titles for p in {" ".join(t[i : i + n]) for i in range(len(t) - n + 1)} if p in candidates
            )
            shorter = {p for p in candidates if any(" ".join(p.split()[:k]) in brands for k in range(1, n))}
            brands |= {p for p in candidates - shorter if opening[p] / anywhere[p] >= min_start_share}
        return cls(brands, codes)

    def found(self, query: str) -> list[tuple[str, str]]:
        """The (kind, term) pairs ``query`` names, in order: the longest brand phrase at each place, then the
        model codes (any code-shaped word counts, seen in the catalog or not)."""
        tokens = words(query)
        out: list[tuple[str, str]] = []
        i = 0
        while i < len(tokens):
            for n in (3, 2, 1):
                phrase = " ".join(tokens[i : i + n])
                if len(tokens) - i >= n and phrase in self.brands:
                    out.append(("brand", phrase))
                    i += n
                    break
            else:
                if is_model_code(tokens[i]) or code_key(tokens[i]) in self.codes:
                    out.append(("model", tokens[i]))
                i += 1
        return out

    def mark(self, query: str, text: str, terms: list[tuple[str, str]] | None = None) -> str:
        """``query`` followed by one ``| kind term: match`` (or ``no match``) per term it names: a brand matches
        when the item's text holds the phrase, a model code when an item word starts with its key. ``terms``:
        ``found(query)`` when the caller has it already."""
        terms = self.found(query) if terms is None else terms
        if not terms:
            return query
        item_words = words(text)
        item_text = f" {' '.join(item_words)} "
        marks = []
        for kind, term in terms:
            if kind == "brand":
                hit = f" {term} " in item_text
            else:
                key = code_key(term)
                hit = any(code_key(w).startswith(key) for w in item_words)
            marks.append(f"{kind} {term}: {'match' if hit else 'no match'}")
        return " | ".join([query, *marks])

    def mark_pairs(self, queries: list[str], texts: list[str]) -> list[str]:
        """:meth:`mark` for each pair, looking each distinct query's terms up once (a re-ranked list repeats
        its query for every candidate)."""
        found: dict[str, list[tuple[str, str]]] = {}
        out = []
        for query, text in zip(queries, texts, strict=True):
            if query not in found:
                found[query] = self.found(query)
            out.append(self.mark(query, text, found[query]))
        return out

    def save(self, folder: Path) -> None:
        data = {"brands": sorted(self.brands), "codes": sorted(self.codes)}
        write_text(Path(folder) / FILE, json.dumps(data, indent=0))

    @classmethod
    def load(cls, folder: Path) -> ProfessionalTerms | None:
        """The terms saved in a cross-encoder's ``folder``, or None when it reads unmarked pairs."""
        path = Path(folder) / FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(set(data["brands"]), set(data["codes"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a professional-terms file ({exc})") from exc
