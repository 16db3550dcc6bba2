"""The prepare step: load and check the user's files, split the judgments by query, write ``data/``."""

from __future__ import annotations

import json
from pathlib import Path

from harnesslm.atomic import atomic_directory
from harnesslm.config import RunConfig
from harnesslm.data import limit_queries, load_catalog, load_judgments, load_queries, split_by_query
from harnesslm.data.checks import check_labels, check_positives
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
        splits = split_by_query(judgments, tuple(data.split), seed=data.seed)
        splits["train"] = limit_queries(splits["train"], data.max_train_queries, seed=data.seed)
        check_positives(splits, tuple(data.split), len(catalog), data.judgments.path, data.relevant_at)
        pool = list(dict.fromkeys(splits["train"]["query"]))
        held_out = set(splits["validation"]["query"]) | set(splits["test"]["query"])
        for source in data.extra_queries:
            extra = load_queries(source.path, source.query_column, source.format)
            pool.extend(q for q in extra if q not in held_out)  # never align on held-out queries
        pool = list(dict.fromkeys(pool))
        with atomic_directory(run.data_dir) as tmp:
            catalog.to_parquet(tmp / "catalog.parquet", index=False)
            for name, frame in splits.items():
                frame.reset_index(drop=True).to_parquet(tmp / f"{name}.parquet", index=False)
            (tmp / "query_pool.json").write_text(json.dumps(pool), encoding="utf-8")
        run.save_config()
        sizes = {name: int(frame["query"].nunique()) for name, frame in splits.items()}
        run.update_json(
            "data.json",
            {"items": len(catalog), "judgments": len(judgments), "queries": sizes, "query_pool": len(pool)},
        )
        console.print(
            f"{len(catalog):,} items, {len(judgments):,} judgments, queries per split {sizes}, "
            f"alignment pool {len(pool):,} queries"
        )
    return run
