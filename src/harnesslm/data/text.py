"""Text normalisation shared by catalog texts and queries, so the same string written differently matches."""

from __future__ import annotations

import html
import unicodedata


def _unescape_fully(s: str) -> str:
    """Undo HTML escaping, repeatedly: scraped data is often escaped twice (``&amp;amp;`` → ``&``)."""
    while "&" in s:
        unescaped = html.unescape(s)
        if unescaped == s:  # every replacement shortens the string, so this terminates
            break
        s = unescaped
    return s


def normalize_text(s: str) -> str:
    """HTML-unescape, apply Unicode NFKC, collapse every run of whitespace to one space and strip."""
    s = unicodedata.normalize("NFKC", _unescape_fully(s))
    return " ".join(s.split())


def normalize_query(s: str) -> str:
    """``normalize_text`` plus casefolding: the key under which two spellings of a query are the same."""
    return normalize_text(s).casefold()
