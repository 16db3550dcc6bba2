"""The prepare step: load and check the user's files, split the judgments by query, write ``data/``."""

from __future__ import annotations

import json
from pathlib import Path

from harnesslm.atomic import atomic_directory
from harnesslm.config import RunConfig
from harnesslm.data import limit_queries, load_catalog, load_judgments, load_queries, split_by_query
from harnesslm.data.checks import check_labels, check_positives
from harnesslm.data.ood import hold_out_groups, without_held_out_items
from harnesslm.run.run_dir import RunDir, console


def prepare(config: RunConfig, root: Path) -> RunDir:
    """Load and validate the user's files, split by query, write ``data/`` and the resolved config."""
    run = RunDir(root, config)
    with run.timed("prepare"):
        data = config.data
        catalog = load_catalog(
            data.catalog.path,
            data.catalog.id_column,
            data.catalog.text_column,
            data.catalog.format,
            fields=data.catalog.fields,
        )
        judgments = load_judgments(
            data.judgments.path,
            set(catalog["item_id"]),
            data.judgments.query_column,
            data.judgments.item_column,
            data.judgments.label_column,
            data.judgments.format,
        )
        for warning in check_labels(
            judgments, data.judgments.path, data.label_offset, data.relevant_at, data.label_max
        ):
            console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        ood = hold_out_groups(judgments, catalog, data.ood_holdout, data.relevant_at, data.seed)
        splits = split_by_query(ood.in_distribution, tuple(data.split), seed=data.seed)
        splits["train"] = without_held_out_items(splits["train"], ood.held_out_items)
        splits["train"] = limit_queries(splits["train"], data.max_train_queries, seed=data.seed)
        check_positives(splits, tuple(data.split), len(catalog), data.judgments.path, data.relevant_at)
        pool = list(dict.fromkeys(splits["train"]["query"]))
        splits |= ood.splits if data.ood_holdout > 0 else {}
        held_out = {q for name, frame in splits.items() if name != "train" for q in frame["query"]}
        for source in data.extra_queries:
            extra = load_queries(source.path, source.query_column, source.format)
            pool.extend(q for q in extra if q not in held_out)  # never align on held-out queries
        pool = list(dict.fromkeys(pool))
        with atomic_directory(run.data_dir) as tmp:
            catalog.to_parquet(tmp / "catalog.parquet", index=False)
            for name, frame in splits.items():
                frame.reset_index(drop=True).to_parquet(tmp / f"{name}.parquet", index=False)
            (tmp / "query_pool.json").write_text(json.dumps(pool), encoding="utf-8")
            if data.ood_holdout > 0:
                (tmp / "ood_groups.json").write_text(json.dumps(ood.groups), encoding="utf-8")
        run.save_config()
        sizes = {name: int(frame["query"].nunique()) for name, frame in splits.items()}
        run.update_json(
            "data.json",
            {
                "items": len(catalog),
                "judgments": len(judgments),
                "queries": sizes,
                "query_pool": len(pool),
                **({"ood_groups_held_out": len(ood.groups)} if data.ood_holdout > 0 else {}),
            },
        )
        console.print(
            f"{len(catalog):,} items, {len(judgments):,} judgments, queries per split {sizes}, "
            f"alignment pool {len(pool):,} queries"
        )
    return run
