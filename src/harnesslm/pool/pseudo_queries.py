"""Pseudo-queries cut from catalog texts: short word spans and head phrases that read like search terms.

Product search queries are short noun phrases ("angle bracket", "delta shower trim kit"), while catalog
titles are long ("Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome (Valve Not Included)"). Cutting
titles into query-like pieces gives the alignment phase many query-shaped texts for free: the teacher
encodes them, and the student learns the teacher's map on the kind of input it will see online (the
"pseudo-query" idea of Lee et al., 2019, ICT, and of doc2query's cheap baselines).

Each title gives, in order of how query-like they are:

* its **head phrase**: the last two or three words of the title's first segment (the text before
  `` with ``, `` in ``, `` for ``, a comma or a parenthesis), which in product titles is the product type;
* **brand + head noun**: the first word with the segment's last word;
* random **word spans** of two to four words from the first segment (seeded).

No dependency on a parser: a head-phrase rule and random spans are robust across shops and languages that
write titles "brand model type, attributes".
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

_SEGMENT_BREAK = re.compile(r"\s(?:with|in|for|w/|-|–|\|)\s|[,(\[;:]", flags=re.IGNORECASE)
_EDGE_PUNCTUATION = re.compile(r"^[^\w#]+|[^\w]+$")
_CODE = re.compile(r"^(?=.*\d)[\w#.-]{7,}$")  # model numbers and SKUs such as "#sc-141" or "rb12345x"


def words_of(text: str) -> list[str]:
    """Lower-cased words with edge punctuation removed; model codes (long tokens with digits) dropped."""
    words = []
    for raw in text.lower().split():
        word = _EDGE_PUNCTUATION.sub("", raw)
        if word and not _CODE.match(word):
            words.append(word)
    return words


def first_segment(text: str) -> str:
    """The title up to its first attribute break (`` with ``, `` in ``, comma, parenthesis, ...)."""
    return _SEGMENT_BREAK.split(text, maxsplit=1)[0]


def pseudo_queries_for(text: str, n: int, rng: random.Random) -> list[str]:
    """Up to ``n`` distinct pseudo-queries for one catalog text (head phrases first, then random spans)."""
    segment = words_of(first_segment(text)) or words_of(text)
    if not segment:
        return []
    candidates = []
    if len(segment) >= 2:
        candidates.append(" ".join(segment[-2:]))
    if len(segment) >= 4:
        candidates.append(" ".join(segment[-3:]))
    if len(segment) >= 3:
        candidates.append(f"{segment[0]} {segment[-1]}")
    spans = []
    for _ in range(2 * n):
        length = rng.randint(2, 4)
        if len(segment) <= length:
            spans.append(" ".join(segment))
            continue
        start = rng.randrange(0, len(segment) - length + 1)
        spans.append(" ".join(segment[start : start + length]))
    # Interleave head phrases with spans so a small n still mixes both kinds.
    ordered = [candidates[0]] if candidates else []
    ordered += [x for pair in zip(spans, candidates[1:] + [""] * len(spans), strict=False) for x in pair if x]
    full = " ".join(segment)
    kept = [q for q in dict.fromkeys(ordered) if q != full or len(segment) <= 3]
    return kept[:n]


def pseudo_queries(texts: Sequence[str], per_item: int = 2, seed: int = 0) -> list[str]:
    """Distinct pseudo-queries for a list of catalog texts, ``per_item`` each at most.

    Each text's spans are drawn from a generator seeded by ``seed`` and the text itself, so a text gets the
    same pseudo-queries whatever else is in the catalog and in whichever order.
    """
    out: dict[str, None] = {}
    for text in texts:
        for query in pseudo_queries_for(text, per_item, random.Random(f"{seed}\x00{text}")):
            out.setdefault(query, None)
    return list(out)
