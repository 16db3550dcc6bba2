"""A static student's table, distilled from the teacher (or ``base``) with model2vec once per run and cached:
the table the align step starts a static student from, and the untrained baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harnesslm.atomic import atomic_directory
from harnesslm.config import StaticStudentConfig
from harnesslm.models import model_loading
from harnesslm.models.bundled import resolve_model
from harnesslm.models.fingerprint import model_fingerprint, texts_fingerprint
from harnesslm.run.run_dir import RunDir
from harnesslm.students import meta as student_meta
from harnesslm.students import static as static_students
from harnesslm.students.shop_tokens import TABLE_VERSION
from harnesslm.students.vocabulary import domain_vocabulary
from harnesslm.students.word_starts import with_word_starts

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def distill_static_baseline(run: RunDir, cfg: StaticStudentConfig):
    """model2vec-distil the table's source (the teacher, or ``cfg.base``) once; save the untrained static model
    as a baseline; return its table.

    The table is cached on disk keyed by the source's weights, ``pca_dims`` and the domain vocabulary:
    distilling passes the whole vocabulary through the source (minutes for a large one), and a rerun of
    alignment should not pay again. The baseline (``static-untrained``) is the teacher's own table when the run
    has one, so a student with another ``base`` does not replace it.
    """
    source = static_source(run, cfg)
    vocabulary = static_vocabulary(run, cfg, source)
    key = f"{run.teacher_space if cfg.base is None else model_fingerprint(source)}-pca{cfg.pca_dims}"
    if vocabulary:
        key += f"-vocab{len(vocabulary)}-{texts_fingerprint(vocabulary)[:12]}-v{TABLE_VERSION}"
    texts = shop_texts(run) if cfg.distill_tokens == "shop" else None
    if texts is not None:
        key += f"-shop{TABLE_VERSION}-{texts_fingerprint(texts)[:12]}"
    cached = run.cache_dir.parent / "static" / key
    if (cached / "modules.json").exists():
        table = model_loading.load_model(str(cached))[0]
        # a full table cached before first words were read as word starts: same rows, tokenizer brought up to date
        table.tokenizer = with_word_starts(table.tokenizer)
    else:
        table = static_students.distill_static(source, cfg.pca_dims, vocabulary, texts)
        with atomic_directory(cached) as tmp:
            static_students.static_model(table).save(str(tmp))
    if cfg.base is None or not (run.static_baseline_dir / "modules.json").exists():
        with atomic_directory(run.static_baseline_dir) as tmp:
            student_meta.save_student(
                static_students.static_model(table),
                tmp,
                student_meta.StudentMeta(kind="static", phase="untrained"),
            )
    return table


def static_source(run: RunDir, cfg: StaticStudentConfig) -> SentenceTransformer:
    """The model a static student's table is distilled from: ``cfg.base``, else the fine-tuned teacher."""
    if cfg.base is None:
        return run.teacher
    return model_loading.load_model(resolve_model(cfg.base, run.config.cache_dir))


def static_vocabulary(run: RunDir, cfg: StaticStudentConfig, source: SentenceTransformer | None = None) -> list[str]:
    """The shop's own words a static student gets as whole tokens (from training queries and catalog texts),
    for the tokenizer of its table's ``source`` (default: the teacher)."""
    if not cfg.domain_vocabulary:
        return []
    texts = [*run.split("train")["query"].drop_duplicates(), *run.catalog["text"]]
    return domain_vocabulary((source or run.teacher).tokenizer, texts, cfg.domain_vocabulary)


def shop_texts(run: RunDir) -> list[str]:
    """The texts whose tokens a ``distill_tokens: shop`` table keeps: the query pool (training and extra
    queries) and the catalog; never validation or test queries."""
    return list(dict.fromkeys([*run.query_pool(), *run.catalog["text"]]))
