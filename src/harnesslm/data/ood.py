"""An out-of-distribution split: whole product groups held out, so a model is scored on kinds of product it
never trained on (the "new categories" case of the Amazon OOD text-matching paper).

A catalog without a category column still names its products: the head noun of a title ("DEWALT 20V MAX
Cordless Drill with Battery" -> ``drill``) is a product group. Groups are held out by a hash of (seed, group),
so the choice is deterministic and does not depend on the other groups. A judged query whose relevant items all
fall in held-out groups leaves the in-distribution splits for ``ood_validation`` / ``ood_test`` (half each, by
query hash); the training split also loses every row whose item is in a held-out group, so no held-out product
is trained on. Validation and test keep theirs: they measure the usual case, the OOD splits the new one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pandas as pd

OOD_SPLITS = ("ood_validation", "ood_test")
_QUALIFIER = re.compile(r"\s(?:with|in|for|on|by|from|plus|includes?)\s|,|\(|\s-\s", re.IGNORECASE)
_WORD = re.compile(r"[a-z]{3,}")


def product_group(title: str) -> str:
    """The head noun of a product title: the last word of three or more letters before the first qualifier
    ("with", "in", "for", a comma...), lower-cased, a plural "s" dropped; "" when there is none."""
    head = _QUALIFIER.split(title, maxsplit=1)[0]
    words = _WORD.findall(head.lower())
    if not words:
        return ""
    word = words[-1]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 3 else word


def _point(seed: int, text: str) -> float:
    digest = hashlib.blake2b(f"ood\x00{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class OodSplit:
    """The held-out groups, the OOD queries' rows by split, and what is left in distribution."""

    groups: list[str]
    splits: dict[str, pd.DataFrame]
    in_distribution: pd.DataFrame
    held_out_items: set[str]


def hold_out_groups(
    judgments: pd.DataFrame, catalog: pd.DataFrame, share: float, relevant_at: float, seed: int = 0
) -> OodSplit:
    """Hold out about ``share`` of the catalog's product groups (by hash); see the module docstring."""
    if not 0 <= share < 1:
        raise ValueError(f"the held-out share of product groups must be in [0, 1), got {share}")
    if share == 0:  # nothing held out: no title is read
        empty = judgments.iloc[:0]
        return OodSplit([], {name: empty for name in OOD_SPLITS}, judgments.reset_index(drop=True), set())
    group_of = dict(zip(catalog["item_id"], catalog["text"].map(product_group), strict=True))
    groups = sorted({g for g in group_of.values() if g and _point(seed, g) < share})
    held = set(groups)
    held_items = {item for item, group in group_of.items() if group in held}
    relevant = judgments[judgments["label"] >= relevant_at]
    in_held = relevant["item_id"].isin(held_items)
    all_held = in_held.groupby(relevant["query"]).all()
    ood_queries = set(all_held[all_held].index)
    is_ood = judgments["query"].isin(ood_queries)
    ood = judgments[is_ood]
    to_test = ood["query"].map(lambda q: _point(seed + 1, q) >= 0.5)
    splits = {"ood_validation": ood[~to_test].reset_index(drop=True), "ood_test": ood[to_test].reset_index(drop=True)}
    return OodSplit(groups, splits, judgments[~is_ood].reset_index(drop=True), held_items)


def without_held_out_items(train: pd.DataFrame, held_out_items: set[str]) -> pd.DataFrame:
    """The training rows whose item is in no held-out group (a query keeps its other rows)."""
    return train[~train["item_id"].isin(held_out_items)].reset_index(drop=True)
