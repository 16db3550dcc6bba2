"""The out-of-distribution split: product groups (title head nouns) held out whole, deterministically."""

from __future__ import annotations

import pandas as pd
import pytest

from harnesslm.data.ood import hold_out_groups, product_group, without_held_out_items


@pytest.mark.parametrize(
    ("title", "group"),
    [
        ("DEWALT 20-Volt MAX Cordless Drill with Battery", "drill"),
        ("Whirlpool 1.9 cu. ft. Over the Range Microwave in Stainless Steel", "microwave"),
        ("Simpson Strong-Tie 12-Gauge Angle", "angle"),
        ("Glacier Bay Faucets, Chrome", "faucet"),
        ("Ace Brass", "brass"),
        ("12 in.", ""),
    ],
)
def test_a_titles_group_is_its_head_noun(title: str, group: str) -> None:
    assert product_group(title) == group


def _shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    kinds = ["drill", "hammer", "faucet", "lamp", "hose", "saw", "rake", "fan", "sink", "vise"]
    catalog = pd.DataFrame(
        {
            "item_id": [f"{k}{i}" for k in kinds for i in range(3)],
            "text": [f"Acme {k} {i}x" for k in kinds for i in range(3)],
        }
    )
    catalog["text"] = [f"Acme Model {i} {k.title()}" for k in kinds for i in range(3)]
    rows = []
    for k in kinds:
        for q in range(4):
            rows += [
                (f"{k} query {q}", f"{k}{q % 3}", 3.0),
                (f"{k} query {q}", f"{kinds[(kinds.index(k) + 1) % 10]}0", 1.0),
            ]
    rows.append(("mixed drill or hammer", "drill0", 3.0))
    rows.append(("mixed drill or hammer", "hammer0", 3.0))
    return pd.DataFrame(rows, columns=["query", "item_id", "label"]), catalog


def test_held_out_groups_take_their_queries_and_leave_the_rest() -> None:
    judgments, catalog = _shop()
    split = hold_out_groups(judgments, catalog, share=0.5, relevant_at=2.33, seed=0)
    assert split.groups and split.groups == hold_out_groups(judgments, catalog, 0.5, 2.33, seed=0).groups
    assert split.groups != hold_out_groups(judgments, catalog, 0.5, 2.33, seed=1).groups, "the seed picks groups"
    ood = pd.concat(split.splits.values())
    assert set(ood["query"]).isdisjoint(split.in_distribution["query"])
    relevant = ood[ood["label"] >= 2.33]
    assert relevant["item_id"].isin(split.held_out_items).all(), "an OOD query's relevant items are all held out"
    assert len(ood) + len(split.in_distribution) == len(judgments)
    assert not split.splits["ood_validation"].empty and not split.splits["ood_test"].empty
    train = without_held_out_items(split.in_distribution, split.held_out_items)
    assert not train["item_id"].isin(split.held_out_items).any()
    none = hold_out_groups(judgments, catalog, share=0.0, relevant_at=2.33)
    assert none.groups == [] and none.in_distribution.equals(judgments) and all(f.empty for f in none.splits.values())
