"""The index step: the fine-tuned teacher encodes the catalog once (cached) into the item index; a catalog
change (items added, changed, taken off sale) then updates it with only the new texts encoded."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harnesslm.atomic import atomic_file, save_array, write_text
from harnesslm.data import load_catalog
from harnesslm.data.errors import DataError
from harnesslm.encoding.cache import cache_path, read_cache
from harnesslm.index import build_item_index, copied_from, index_version, mark_copy
from harnesslm.index.item_index import ItemIndex
from harnesslm.run import provenance
from harnesslm.run.catalog_embeddings import encoded_texts, item_cache_path, item_embeddings
from harnesslm.run.provenance import step_inputs
from harnesslm.run.run_dir import RunDir, console

if TYPE_CHECKING:
    from harnesslm.index.milvus_index import MilvusItemIndex


def build_index(run: RunDir, progress: bool = True, refresh: bool = False) -> ItemIndex | MilvusItemIndex:
    """Encode the catalog once with the teacher (cached) and build the index in ``index/`` (FAISS, or Milvus
    with ``index.kind: milvus``, in which case ``index/`` only describes the collection). ``refresh`` drops the
    cached catalog embeddings of this teacher first, so they are encoded again."""
    with run.timed("index"):
        if refresh:
            item_cache_path(run, run.teacher).unlink(missing_ok=True)
        embeddings = item_embeddings(run, run.teacher, progress)
        built = build_item_index(
            embeddings,
            run.catalog["item_id"].tolist(),
            run.teacher_space,
            run.config.index,
            run.index_dir,
            progress,
            texts=run.catalog["text"].tolist(),
        )
        provenance.write_record(run.index_dir, *step_inputs(run, "index"))
        run.loaded.index_rewritten()
        console.print(f"{built.meta.kind} index over {built.meta.size:,} items ({built.meta.dim}-d)")
    return built


def update_index(
    run: RunDir, changes: Path | None = None, deletions: Path | None = None, progress: bool = True
) -> dict[str, int]:
    """Apply a catalog change to the run without a full catalog pass: ``changes`` (a file with the catalog's
    columns: new items, and items whose text or fields changed) and ``deletions`` (item ids, one a line, or a
    file with the catalog's id column) taken off sale.

    Only new and changed texts are encoded by the teacher (through the cache); every other item keeps its
    embedding (from the cache of the current catalog, else from the index itself for an exact or HNSW index).
    An exact, SQ8 or IVF-PQ index is changed in place (:meth:`ItemIndex.update_in_place`), a Milvus collection
    live with upsert and delete (:meth:`MilvusItemIndex.update_live`), an HNSW graph with new nodes and tombstones
    (built again once they pass a fifth of its nodes), as is the service's graph over an exact index when it was
    current; an index whose settings the config changed is built again. Then the
    catalog is replaced, and the full catalog's embeddings cached under the new catalog, so a later
    ``harness index`` encodes nothing. A FAISS index is swapped only once everything new is written: an update
    that fails halfway leaves the previous index and catalog whole. Milvus has no transaction: a change cut off
    there is journaled, the run's index refused until the same update is run again, which completes it. BM25
    follows on its next use (the lexical index is rebuilt when the catalog changes; Milvus's own full-text
    index gets the new texts with the upsert). Returns the counts added, changed, removed and encoded, and
    whether the index was changed in place.
    """
    if changes is None and deletions is None:
        raise ValueError("an update needs a file of changed items, of deleted ids, or both")
    cfg = run.config.data.catalog
    old = run.catalog
    delta = load_catalog(changes, cfg.id_column, cfg.text_column, cfg.format, cfg.fields) if changes else None
    removed = _deleted_ids(deletions, cfg.id_column) if deletions else set()
    note = {"changes": str(changes) if changes else None, "deletions": str(deletions) if deletions else None}
    _check_journal(run, note)
    if unknown := sorted(removed - set(old["item_id"]))[:3]:
        raise DataError(f"cannot delete item(s) not in the catalog: {', '.join(unknown)}", path=deletions)
    with run.timed("index update"):
        old_vectors = _current_vectors(run)
        new, changed = _merged_catalog(old, delta, removed)
        old_text = dict(zip(old["item_id"], old["text"], strict=True))
        fresh = [t for i, t in zip(new["item_id"], new["text"], strict=True) if old_text.get(i) != t]
        fresh = list(dict.fromkeys(fresh))
        batch = run.config.encoding.batch_size
        encoded = encoded_texts(run, run.teacher, fresh, "document", batch, progress) if fresh else None
        row_of = {item: row for row, item in enumerate(old["item_id"])}
        fresh_row = {text: row for row, text in enumerate(fresh)}
        rows = [
            old_vectors[row_of[i]] if old_text.get(i) == t else encoded[fresh_row[t]]  # type: ignore[index]
            for i, t in zip(new["item_id"], new["text"], strict=True)
        ]
        vectors = np.ascontiguousarray(np.stack(rows), dtype=np.float32)
        counts = {
            "added": int((~new["item_id"].isin(old["item_id"])).sum()),
            "changed": len(changed),
            "removed": len(removed),
            "encoded": len(fresh),
        }
        counts["in_place"] = _swap(run, old, new, vectors, counts, note)
    console.print(
        f"index updated: {counts['added']:,} added, {counts['changed']:,} changed, {counts['removed']:,} removed "
        f"({counts['encoded']:,} texts encoded); {len(new):,} items"
    )
    return counts


def _deleted_ids(path: Path, id_column: str) -> set[str]:
    """Ids from a plain list (one a line) or from a table's id column."""
    if Path(path).suffix.lower() in (".txt", ".ids", ""):
        return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}
    from harnesslm.data.readers import read_table

    return {str(v).strip() for v in read_table(path, [id_column], None)[id_column]}


def _current_vectors(run: RunDir) -> np.ndarray:
    """The current catalog's embeddings, in catalog order: the cache of its pass, else the index's own vectors
    (exact and HNSW keep them whole; IVF-PQ and SQ8 keep codes and need the cache)."""
    cached = read_cache(item_cache_path(run, run.teacher), len(run.catalog))
    if cached is not None:
        return cached
    index = run.index
    if index.meta.kind not in ("exact", "hnsw") or getattr(index.meta, "source_dim", None):
        raise DataError(
            f"the current catalog's embeddings are not in the cache ({run.cache_dir}) and a {index.meta.kind} index "
            "does not keep them whole: run `harness index` once, then update"
        )
    order = {item: row for row, item in enumerate(index.item_ids)}
    return index.vectors()[[order[i] for i in run.catalog["item_id"]]]


def _merged_catalog(old: pd.DataFrame, delta: pd.DataFrame | None, removed: set[str]) -> tuple[pd.DataFrame, set]:
    """The catalog after the change (kept items in place, changed ones updated in place, new ones at the end)
    and the ids whose text or fields changed."""
    kept = old[~old["item_id"].isin(removed)].set_index("item_id", drop=False)
    if delta is None or delta.empty:
        return kept.reset_index(drop=True), set()
    delta = delta.set_index("item_id", drop=False)
    known = delta.index.intersection(kept.index)
    columns = [c for c in kept.columns if c in delta.columns]
    differs = (kept.loc[known, columns] != delta.loc[known, columns]).any(axis=1)
    changed = set(differs[differs].index)
    kept.loc[known, columns] = delta.loc[known, columns]
    new = delta.loc[delta.index.difference(kept.index, sort=False)]
    merged = pd.concat([kept, new.reindex(columns=kept.columns, fill_value="")])
    return merged.reset_index(drop=True), changed


def _swap(run: RunDir, old: pd.DataFrame, catalog: pd.DataFrame, vectors: np.ndarray, counts: dict, note: dict) -> bool:
    """Write the new catalog's embeddings to the cache, then the index, then replace the catalog: the index
    directory and the catalog file are each replaced whole (a crash before leaves the old ones). A Milvus
    collection changed live is journaled until the catalog is replaced (see :func:`_milvus_updated`). Whether the
    index was updated in place (else it was built again)."""
    record = provenance.read_record(run.index_dir) or {}  # before the build replaces the folder
    version_before = index_version(run.index_dir)
    staged = run.data_dir / "catalog.next.parquet"
    with atomic_file(staged, "wb") as handle:
        catalog.to_parquet(handle, index=False)
    save_array(cache_path(run.teacher, catalog["text"].tolist(), run.cache_dir, role="document"), vectors)
    change = _Change.between(old, catalog)
    updated = _milvus_updated(run, change, catalog, vectors, note) or _updated_in_place(run, change, vectors)
    if updated is not None:
        updated.save(run.index_dir)
    else:
        build_item_index(
            vectors,
            catalog["item_id"].tolist(),
            run.teacher_space,
            run.config.index,
            run.index_dir,
            progress=False,
            texts=catalog["text"].tolist(),
        )
    os.replace(staged, run.data_dir / "catalog.parquet")
    run.loaded.catalog, run.loaded.item_texts = catalog, None
    update = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **counts, **note}
    provenance.write_record(
        run.index_dir, *step_inputs(run, "index"), extra={"updates": [*record.get("updates", []), update]}
    )
    _journal(run).unlink(missing_ok=True)
    run.loaded.index_rewritten()
    _update_serving_graph(run, change, vectors, version_before)
    return updated is not None


@dataclass(frozen=True)
class _Change:
    """A catalog change as rows of the old catalog (removed, and kept with a new text) and the ids added at the
    end of the new one (:func:`_merged_catalog` keeps the kept items in order and appends the new)."""

    old_ids: list[str]
    removed: np.ndarray
    changed: np.ndarray
    added: list[str]
    new_row: dict[str, int]

    @classmethod
    def between(cls, old: pd.DataFrame, catalog: pd.DataFrame) -> _Change:
        old_ids = old["item_id"].tolist()
        new_row = {item: row for row, item in enumerate(catalog["item_id"])}
        texts = catalog["text"].tolist()
        removed = [row for row, item in enumerate(old_ids) if item not in new_row]
        changed = [
            row
            for row, (item, text) in enumerate(zip(old_ids, old["text"], strict=True))
            if item in new_row and texts[new_row[item]] != text
        ]
        added = catalog["item_id"].iloc[len(old_ids) - len(removed) :].tolist()
        return cls(old_ids, np.asarray(removed, dtype=np.int64), np.asarray(changed, dtype=np.int64), added, new_row)

    def new_rows_of_changed(self) -> list[int]:
        return [self.new_row[self.old_ids[row]] for row in self.changed]

    def fits(self, index: ItemIndex) -> bool:
        """Whether ``index`` takes the change in place: an HNSW graph whose tombstones (nodes of removed and
        changed items) would pass :data:`MAX_TOMBSTONE_SHARE` of its nodes is built again instead."""
        if index.meta.kind != "hnsw":
            return True
        dead = index.tombstones + len(self.removed) + len(self.changed)
        return dead <= MAX_TOMBSTONE_SHARE * (index.index.ntotal + len(self.changed) + len(self.added))

    def applied(self, index: ItemIndex, vectors: np.ndarray) -> ItemIndex:
        """:meth:`ItemIndex.update_in_place` with this change (``vectors``: the new catalog's, in its order)."""
        kept = len(self.old_ids) - len(self.removed)
        return index.update_in_place(
            self.changed, vectors[self.new_rows_of_changed()], self.removed, self.added, vectors[kept:]
        )


MAX_TOMBSTONE_SHARE = 0.2
"""An HNSW graph changed in place keeps the nodes of removed and changed items as tombstones, which searches walk
past; past this share of its nodes, an update builds the graph again."""


def _update_serving_graph(run: RunDir, change: _Change, vectors: np.ndarray, version_before: str) -> None:
    """Apply the change to the service's HNSW graph over an exact index (``RUN/serving/hnsw``) as well, when it was
    built from the index as it was before the change, so a service that swaps to the new index does not build
    its graph again (seconds here, against a minute for 55k items under load). Otherwise it is left to the
    service, which rebuilds a graph whose source is stale."""
    folder = run.serving_dir / "hnsw"
    if not (folder / "meta.json").exists() or copied_from(folder) != version_before:
        return
    graph = ItemIndex.load(folder)
    if list(graph.item_ids) != change.old_ids or not change.fits(graph):
        return
    change.applied(graph, vectors).save(folder)
    mark_copy(folder, index_version(run.index_dir))  # the save replaced the folder: its recall is measured again


def _updated_in_place(run: RunDir, change: _Change, vectors: np.ndarray) -> ItemIndex | None:
    """The run's FAISS index with the change applied in place (:meth:`ItemIndex.update_in_place`: no training,
    seconds at millions of items), or None where it must be built again: an index that is not the config's kind
    or not in the catalog's order, or an HNSW graph with too many tombstones (:data:`MAX_TOMBSTONE_SHARE`)."""
    wanted = run.config.index
    if (run.index_dir / "meta.json").exists() and _index_kind(run) == "milvus":
        return None
    index = run.index
    if not isinstance(index, ItemIndex) or index.meta.kind not in ItemIndex.IN_PLACE_KINDS:
        return None
    if index.meta.kind != wanted.kind or (wanted.dim or index.meta.dim) != index.meta.dim:
        return None
    if list(index.item_ids) != change.old_ids or not change.fits(index):
        return None
    return change.applied(index, vectors)


def _milvus_updated(
    run: RunDir, change: _Change, catalog: pd.DataFrame, vectors: np.ndarray, note: dict
) -> MilvusItemIndex | None:
    """The run's Milvus collection with the change upserted and deleted live
    (:meth:`MilvusItemIndex.update_live`), or None where it is not a Milvus index of the config's collection
    (then a new collection is built behind the alias).

    Milvus has no transaction over the calls, so ``index/update.pending.json`` says a change is under way until
    the catalog is replaced: meanwhile the run's index is refused with how to complete it, and the same update run
    again applies it whole (upsert and delete are idempotent).
    """
    wanted = run.config.index
    if not (run.index_dir / "meta.json").exists() or _index_kind(run) != "milvus" or wanted.kind != "milvus":
        return None
    from harnesslm.index.milvus_index import MilvusItemIndex, supports_full_text

    raw = json.loads((run.index_dir / "meta.json").read_text(encoding="utf-8"))
    target = wanted.milvus
    if raw["collection"] != target.collection or raw["index_type"] != target.index_type.upper():
        return None
    if not _same_place(raw["uri"], target.uri, run.index_dir):
        return None
    journal = _journal(run)
    index = MilvusItemIndex.load(run.index_dir, token=target.token, pending_ids=change.old_ids)
    if index.meta.full_text != (target.full_text and supports_full_text(index.client)):
        return None  # full-text search turned on or off in the config: a new collection
    write_text(journal, json.dumps({"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **note}))
    upserted = np.concatenate(
        [change.new_rows_of_changed(), np.arange(len(change.added)) + len(catalog) - len(change.added)]
    )
    upserted = upserted.astype(np.int64)
    return index.update_live(
        catalog["item_id"].iloc[upserted].tolist(),
        vectors[upserted],
        [change.old_ids[row] for row in change.removed],
        catalog["item_id"].tolist(),
        texts=catalog["text"].iloc[upserted].tolist() if index.meta.full_text else None,
    )


def _same_place(built: str, wanted: str | None, directory: Path) -> bool:
    """Whether the collection was built where the config points (a Lite file is resolved from the index folder,
    where it lives by default)."""
    from harnesslm.index.milvus_index import is_lite_uri

    target = wanted or str(directory / "milvus.db")
    if not is_lite_uri(built) or not is_lite_uri(target):
        return built == target
    return (directory / built).resolve() == Path(target).resolve()  # a relative Lite uri in meta.json: the folder's


def _index_kind(run: RunDir) -> str | None:
    return json.loads((run.index_dir / "meta.json").read_text(encoding="utf-8")).get("kind")


def _journal(run: RunDir) -> Path:
    from harnesslm.index.milvus_index import PENDING_UPDATE

    return run.index_dir / PENDING_UPDATE


def _check_journal(run: RunDir, note: dict) -> None:
    """Before an update: a Milvus change cut off earlier must be completed first, by the same files. One cut off
    after the catalog was replaced was complete already: its journal is removed."""
    journal = _journal(run)
    if not journal.exists():
        return
    if not (run.data_dir / "catalog.next.parquet").exists():
        journal.unlink()
        return
    earlier = json.loads(journal.read_text(encoding="utf-8"))
    if {k: earlier.get(k) for k in note} != note:
        raise DataError(
            f"an update of the Milvus collection was cut off (changes {earlier.get('changes')}, deletions "
            f"{earlier.get('deletions')}): run that update again to complete it before applying another",
            path=journal,
        )
