"""The index step: the fine-tuned teacher encodes the catalog once (cached) into the item index."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harnesslm.index import build_item_index
from harnesslm.index.item_index import ItemIndex
from harnesslm.run import provenance
from harnesslm.run.catalog_embeddings import item_cache_path, item_embeddings
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
