"""A run directory and what is in it, loaded lazily so steps run in one process share loaded models."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from harnesslm.atomic import write_text
from harnesslm.config import RunConfig, StudentConfig, dump_config, load_config
from harnesslm.paths import cache_root

if TYPE_CHECKING:  # the data stack, models and indexes load when a step first needs them, so `harness --help` is fast
    import pandas as pd
    from sentence_transformers import SentenceTransformer

    from harnesslm.index.bm25 import BM25Retriever
    from harnesslm.index.item_index import ItemIndex
    from harnesslm.index.milvus_index import MilvusItemIndex

console = Console(stderr=True)

SPLITS = ("train", "validation", "test")
LOG_FILE = "logs/run.log"
"""Training metrics and library warnings of every step, appended; the terminal keeps progress and results."""


class StepMissingError(RuntimeError):
    """A step needs the output of an earlier step that has not run (or did not finish)."""


@dataclass
class Loaded:
    """What a :class:`RunDir` has read from disk, each artifact loaded on first use and kept, so the steps run in
    one process share one copy. A step that rewrites an artifact resets what depended on it, by name of the
    step (:meth:`teacher_rewritten`, :meth:`index_rewritten`)."""

    catalog: pd.DataFrame | None = None
    item_texts: dict[str, str] | None = None
    base_teacher: SentenceTransformer | None = None
    teacher: SentenceTransformer | None = None
    teacher_space: str | None = None
    index: ItemIndex | MilvusItemIndex | None = None
    lexical_index: BM25Retriever | None = None

    def teacher_rewritten(self) -> None:
        """After fine-tuning: the teacher, its space and the index built with it are stale, and the untrained
        teacher (only needed to mine negatives) is freed."""
        self.base_teacher = self.teacher = self.teacher_space = self.index = None

    def index_rewritten(self) -> None:
        """After an index was built (or a served graph replaced the flat copy): read it again when needed."""
        self.index = None


class RunDir:
    """Paths of a run and lazy access to its artifacts (kept in :attr:`loaded`).

    Layout::

        config.yaml            resolved configuration
        data/                  catalog.parquet, train/validation/test.parquet, query_pool.json
        teacher/               the fine-tuned teacher (sentence-transformers folder)
        index/                 FAISS index of the teacher's item embeddings + ids + meta
        baselines/static-untrained/   model2vec distilled from the teacher, no training
        students/NAME/aligned, students/NAME/refined   student query encoders
        metrics.json, bench.json, timings.json, report.md
    """

    def __init__(self, root: Path, config: RunConfig | None = None) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise StepMissingError(f"{self.root} is a file, not a run directory: choose another --out")
        if config is None:
            if not self.config_path.exists():
                raise StepMissingError(f"{self.root} is not a run directory (no config.yaml): run `prepare` first")
            config = load_config(self.config_path)
        self.config = config
        self.loaded = Loaded()

    # paths -----------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def teacher_dir(self) -> Path:
        return self.root / "teacher"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def lexical_dir(self) -> Path:
        """The BM25 index over the catalog texts (the lexical half of a hybrid), built once."""
        return self.root / "lexical"

    @property
    def serving_dir(self) -> Path:
        """What the service derives from the run once and reuses: its ANN index and hybrid settings."""
        return self.root / "serving"

    @property
    def static_baseline_dir(self) -> Path:
        return self.root / "baselines" / "static-untrained"

    def student_dir(self, name: str, phase: str) -> Path:
        return self.root / "students" / name / phase

    @property
    def relevance_dir(self) -> Path:
        """The re-ranking stage's folder: candidates, labels, the relevance teacher and what it distilled."""
        return self.root / "relevance"

    @property
    def relevance_teacher_dir(self) -> Path:
        """The cross-encoder relevance teacher (not the bi-encoder teacher of ``teacher_dir``)."""
        return self.relevance_dir / "teacher"

    def reranker_dir(self, loss: str) -> Path:
        return self.relevance_dir / "rerankers" / loss

    def bi_encoder_dir(self, student: str, loss: str) -> Path:
        """The bi-encoder student distilled from the relevance teacher with ``loss``."""
        return self.relevance_dir / "bi-encoders" / f"{student}-{loss}"

    @property
    def cache_dir(self) -> Path:
        return (self.config.cache_dir or cache_root()) / "embeddings"

    def save_config(self) -> None:
        write_text(self.config_path, dump_config(self.config))

    # data ------------------------------------------------------------------------------------------------
    def split(self, name: str) -> pd.DataFrame:
        path = self.data_dir / f"{name}.parquet"
        if not path.exists():
            raise StepMissingError(f"{path} is missing: run `harness prepare` first")
        import pandas as pd

        return pd.read_parquet(path)

    @property
    def catalog(self) -> pd.DataFrame:
        if self.loaded.catalog is None:
            self.loaded.catalog = self.split("catalog")
        return self.loaded.catalog

    @property
    def item_texts(self) -> dict[str, str]:
        if self.loaded.item_texts is None:
            self.loaded.item_texts = dict(zip(self.catalog["item_id"], self.catalog["text"], strict=True))
        return self.loaded.item_texts

    def query_pool(self) -> list[str]:
        return json.loads((self.data_dir / "query_pool.json").read_text(encoding="utf-8"))

    # models ----------------------------------------------------------------------------------------------
    @property
    def base_teacher(self) -> SentenceTransformer:
        """The teacher as configured, before fine-tuning."""
        if self.loaded.base_teacher is None:
            from harnesslm.models.bundled import resolve_model
            from harnesslm.models.model_loading import load_model

            cfg = self.config.teacher
            model = load_model(resolve_model(cfg.model, self.config.cache_dir), cfg.max_seq_length)
            self.loaded.base_teacher = self._prompted(model)
        return self.loaded.base_teacher

    @property
    def teacher(self) -> SentenceTransformer:
        """The fine-tuned teacher (``teacher/``)."""
        if self.loaded.teacher is None:
            if not (self.teacher_dir / "modules.json").exists():
                raise StepMissingError(f"no teacher in {self.teacher_dir}: run `harness teacher` first")
            from harnesslm.models.model_loading import load_model

            model = load_model(str(self.teacher_dir), self.config.teacher.max_seq_length)
            self.loaded.teacher = self._prompted(model)
        return self.loaded.teacher

    def _prompted(self, model: SentenceTransformer) -> SentenceTransformer:
        """The teacher with the configured query and document prompts (its own ones where none is set)."""
        from harnesslm.models.prompts import set_prompts

        set_prompts(model, self.config.teacher.query_prompt, self.config.teacher.document_prompt)
        return model

    @property
    def teacher_space(self) -> str:
        """The fine-tuned teacher's fingerprint: the embedding space its index and students live in."""
        if self.loaded.teacher_space is None:
            from harnesslm.models.fingerprint import model_fingerprint

            self.loaded.teacher_space = model_fingerprint(self.teacher)
        return self.loaded.teacher_space

    @property
    def index(self) -> ItemIndex | MilvusItemIndex:
        """The teacher's item index: FAISS, or the Milvus collection ``index/meta.json`` points at."""
        if self.loaded.index is None:
            if not (self.index_dir / "meta.json").exists():
                raise StepMissingError(f"no index in {self.index_dir}: run `harness index` first")
            from harnesslm.index import load_item_index

            self.loaded.index = load_item_index(self.index_dir, token=self.config.index.milvus.token)
        return self.loaded.index

    @property
    def lexical_index(self) -> BM25Retriever:
        """BM25 over the catalog texts, built on first use and kept in ``lexical/`` for evaluation and serving."""
        if self.loaded.lexical_index is None:
            self.loaded.lexical_index = self._lexical_index()
        return self.loaded.lexical_index

    def _lexical_index(self) -> BM25Retriever:
        """Read from ``lexical/``, or rebuilt when the catalog changed (its ids and texts are fingerprinted)."""
        from harnesslm.index.bm25 import BM25Retriever

        ids, texts = self.catalog["item_id"].tolist(), self.catalog["text"].tolist()
        signature = hashlib.sha256("\x1f".join([*ids, "\x1e", *texts]).encode("utf-8")).hexdigest()
        marker = self.lexical_dir / "catalog.sha256"
        if marker.exists() and marker.read_text(encoding="utf-8") == signature:
            return BM25Retriever.load(self.lexical_dir)
        bm25 = BM25Retriever.fit(ids, texts)
        bm25.save(self.lexical_dir)
        write_text(marker, signature)
        return bm25

    def students(self, names: list[str] | None = None) -> list[StudentConfig]:
        chosen = self.config.students if not names else [self.config.student(n) for n in names]
        return list(chosen)

    # bookkeeping -----------------------------------------------------------------------------------------
    def read_json(self, name: str) -> dict:
        path = self.root / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def update_json(self, name: str, values: dict) -> None:
        """Merge ``values`` into the top level of ``name`` (a file that steps fill in turn, like timings.json)."""
        self.write_json(name, self.read_json(name) | values)

    def write_json(self, name: str, values: dict) -> None:
        """Write ``name`` whole, atomically."""
        write_text(self.root / name, json.dumps(values, indent=2, default=float))

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Announce a step, time it, and record its wall time in timings.json; its log goes to ``logs/run.log``."""
        console.rule(f"[bold]{step}")
        start = time.perf_counter()
        with _logged_to(self.root / LOG_FILE, step):
            yield
        seconds = time.perf_counter() - start
        self.update_json("timings.json", {step: round(seconds, 2)})
        console.print(f"[green]{step} done in {seconds:.1f} s")


@contextmanager
def _logged_to(path: Path, step: str) -> Iterator[None]:
    """Append this package's INFO records and every library's warnings to ``path`` while a step runs.

    transformers logs through its own handler by default; its logger is routed through the root logger
    meanwhile (and restored after, as it was), so its load reports land in the file and the terminal shows
    them only when they are errors.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {step} %(levelname)s %(name)s: %(message)s"))
    package, root, hf = logging.getLogger("harnesslm"), logging.getLogger(), logging.getLogger("transformers")
    saved = (package.level, hf.propagate, list(hf.handlers))
    root.addHandler(handler)
    package.setLevel(logging.INFO)
    hf.propagate = True
    for own in saved[2]:
        hf.removeHandler(own)
    try:
        yield
    finally:
        package.setLevel(saved[0])
        hf.propagate = saved[1]
        for own in saved[2]:
            hf.addHandler(own)
        root.removeHandler(handler)
        handler.close()


def judged_queries(run: RunDir, path: Path | None, **columns) -> pd.DataFrame:
    """The test split, or any judged query file the user names (read with the same column options)."""
    if path is None:
        return run.split("test")
    from harnesslm.data import load_judgments

    return load_judgments(path, set(run.catalog["item_id"]), **columns)
