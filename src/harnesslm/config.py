"""Run configuration: one pydantic model per step, loaded from YAML and saved, resolved, into the run directory.

Every setting has a default that works on the built-in demo data and reads the Home Depot layout
(``product_uid``, ``product_title``, ``search_term``, ``relevance``) without extra flags.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

RankingLoss = Literal["margin_mse", "approx_ndcg", "listnet", "listmle", "lambdaloss", "ranknet"]
"""The ranking losses a re-ranker or the bi-encoder student can be distilled with: the one list of their names
(``harnesslm.rerank.losses`` builds them; every name but ``margin_mse`` is an objective of
``harnesslm.losses.ranking_objectives``)."""
RANKING_LOSSES: tuple[str, ...] = get_args(RankingLoss)


class _Section(BaseModel):
    """A config section: unknown keys are errors, and it never changes once made (an override makes a copy,
    ``section.model_copy(update=...)``), so a step can hold on to the config it was given."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Section):
    """How one training step runs: ``steps`` optimizer steps of ``batch_size`` examples at ``learning_rate``,
    linear warm-up over ``warmup_ratio`` of the steps, seeded. Every step that trains takes one (the teacher,
    each student's alignment and refinement); a partial one in a config file keeps its owner's defaults."""

    steps: int = Field(ge=0, description="optimizer steps (the cap when `epochs` is set); 0 skips the training")
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    seed: int = 0
    epochs: float | None = Field(
        None,
        gt=0,
        description="a budget in passes over the phase's data (the alignment pool, the training pairs): the phase "
        "runs whichever is shorter, `steps` or this many epochs, so a small shop trains for fewer steps than a "
        "large one. None: `steps` alone",
    )

    def steps_for(self, rows: int) -> int:
        """The optimizer steps this schedule runs over ``rows`` training rows: ``steps``, capped at ``epochs``."""
        if self.epochs is None or rows <= 0:
            return self.steps
        return min(self.steps, max(1, math.ceil(self.epochs * rows / min(self.batch_size, rows))))


def _fill_schedules(data: Any, defaults: dict[str, dict[str, Any]], legacy: dict[str, tuple[str, ...]]) -> Any:
    """Before validation: move the flat keys of earlier versions (``align_steps``, ``max_steps``) into their
    nested schedules, then complete each schedule given in part from its owner's ``defaults``."""
    if not isinstance(data, dict):
        return data
    out = {k: v for k, v in data.items() if k not in legacy}
    nested = {k: dict(v) if isinstance(v, dict) else v for k, v in out.items() if k in defaults}
    for old, targets in legacy.items():
        if old in data:
            for target in targets:
                section, _, key = target.partition(".")
                if not key:  # still a key of its own (a section seed that also seeds its schedules)
                    out.setdefault(section, data[old])
                elif isinstance(nested.setdefault(section, {}), dict):
                    nested[section].setdefault(key, data[old])
    for section, base in defaults.items():
        given = nested.get(section)
        out[section] = given if isinstance(given, BaseModel) else {**base, **(given or {})}
    return out


class CatalogSource(_Section):
    """Where the catalog lives and which columns hold the item id, its text and extra item fields."""

    path: Path
    id_column: str = "product_uid"
    text_column: str = "product_title"
    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None
    fields: list[str] = Field(
        default_factory=list,
        description="extra catalog columns kept (as text) in data/catalog.parquet, for search filters and display",
    )


class JudgmentsSource(_Section):
    """A judged query log: one row per (query, item, graded label)."""

    path: Path
    query_column: str = "search_term"
    item_column: str = "product_uid"
    label_column: str = "relevance"
    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None


class QueriesSource(_Section):
    """Unlabeled queries (search logs, synthetic queries): used for alignment only."""

    path: Path
    query_column: str = "search_term"
    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None


class DataConfig(_Section):
    catalog: CatalogSource
    judgments: JudgmentsSource
    extra_queries: list[QueriesSource] = Field(default_factory=list)
    split: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="train / validation / test shares of the judged queries (sum to 1)"
    )
    seed: int = 0
    max_train_queries: int | None = Field(
        None,
        ge=1,
        description="keep only this many training queries (drawn by query, seeded; validation and test are "
        "untouched): to see how the recipe behaves with little labelled data",
    )
    label_offset: float = Field(1.0, description="gain = label - label_offset (Home Depot grades are 1..3)")
    relevant_at: float = Field(2.33, description="labels >= this count as relevant for recall/precision/MRR")
    label_max: float | None = Field(None, description="top of the label scale: labels above it are an error")
    ood_holdout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of product groups (a title's head noun) held out whole: the queries whose relevant items "
        "all fall in them are scored as ood_validation and ood_test, and training never sees those items "
        "(harnesslm.data.ood). 0: no out-of-distribution split",
    )

    @model_validator(mode="after")
    def _check_split(self) -> DataConfig:
        if any(share < 0 for share in self.split) or abs(sum(self.split) - 1.0) > 1e-6 or self.split[0] <= 0:
            raise ValueError(
                f"split {list(self.split)} must be three non-negative shares (train, validation, test) that sum "
                "to 1, with a training share above 0"
            )
        return self


class AdversarialConfig(_Section):
    """Adversarial training on the input embeddings (``AdversarialContrastiveLoss``), of the bi-encoder teacher
    (``teacher.adversarial``) or of the cross-encoder relevance teacher (``relevance.teacher.adversarial``):
    each batch again with every text's (or pair's) word embeddings moved ``epsilon`` along the gradient that
    hurts most (FGM), plus a contrastive term between each clean and perturbed view. Off by default: it doubles
    a step's cost, and at epsilon 1.0 it lost 0.057 validation NDCG@10 for the MiniLM teacher on Home Depot, and
    as much out of distribution (benchmarks/teacher_ideas.py, the idea ``fgm``)."""

    method: Literal["off", "fgm"] = "off"
    epsilon: float = Field(1.0, gt=0, description="L2 norm of a text's perturbation, over its token embeddings")
    weight: float = Field(0.5, ge=0, description="weight of the perturbed loss and the view contrast")


class GraphRegularizerConfig(_Section):
    """A graph regulariser of the teacher (``GraphRegularizedLoss``, after RAMEN): each training row's positive
    item must also find, among the batch's, an item judged relevant beside it for some query (a neighbour in the
    judgments' query-item graph). No inference cost. Off (weight 0) by default: on Home Depot with MiniLM, weight 0.1
    gained +0.005 validation NDCG@10 (95% interval [-0.0001, 0.0104]) and nothing out of distribution, for 1.7x the
    step time (benchmarks/teacher_ideas.py, the idea ``graph``)."""

    weight: float = Field(0.0, ge=0, description="weight of the positive-to-neighbour InfoNCE (0: off)")
    temperature: float = Field(0.05, gt=0, description="softmax temperature of that InfoNCE")


class OodRegularizerConfig(_Section):
    """An intervention regulariser of the teacher (``TokenInterventionLoss``, after the Amazon OOD text-matching
    paper): each sampled token's effect on the (query, positive) score, with the token and without it, is held
    close to the base model's. Off (weight 0): on Home Depot with MiniLM, weight 1.0 lost 0.024 validation NDCG@10
    and 0.039 out of distribution, for twice the step time (benchmarks/teacher_ideas.py, the idea ``ood``)."""

    weight: float = Field(0.0, ge=0, description="weight of the squared effect gap, in logits (0: off)")
    tokens: int = Field(16, ge=1, description="tokens removed per batch (half in queries, half in items)")


class CrossEncoderLabelsConfig(_Section):
    """A cross-encoder's labels for the teacher (``ContrastiveMarginMSELoss``, the Walmart recipe applied to the
    bi-encoder teacher): a relevance cross-encoder scores every training row's positive and mined negatives, and
    the teacher learns those margins beside the InfoNCE. Off (weight 0): on Home Depot with MiniLM, weight 0.25
    and the default relevance cross-encoder trained on the fine-tuned teacher's candidates gained +0.008
    validation NDCG@10 (95% interval [-0.0001, 0.016]) and +0.017 out of distribution ([0.001, 0.033]); with the
    labeller the step trains itself (negatives from the off-the-shelf teacher) nothing (+0.001, -0.002)
    (benchmarks/teacher_ideas.py, the ideas ``ce-labels`` and ``ce-labels-own``)."""

    weight: float = Field(0.0, ge=0, description="weight of the Margin-MSE term beside the InfoNCE (0: off)")
    model: str | None = Field(
        None,
        description="the relevance cross-encoder that labels the pairs (a folder such as a run's relevance/teacher, "
        "or a hub name); None: the teacher step trains one first with the relevance.teacher settings, its "
        "negatives from the ranking that mines the teacher's (kept in teacher-labeller/)",
    )
    margin_scale: float = Field(
        2.5,
        gt=0,
        description="the cross-encoder's margins in standard deviations of its scores, times this, are the targets "
        "of the teacher's margins in InfoNCE logits (cosine / temperature). 2.5 matches the spread of the "
        "fine-tuned MiniLM teacher's own margins (2.4 logits) on 400 Home Depot training rows",
    )


class TeacherConfig(_Section):
    """Phase 1: contrastive fine-tuning of the large model on (query, relevant item) pairs."""

    model: str = Field("bundled:all-MiniLM-L6-v2", description="path, hub name or bundled:NAME")
    enabled: bool = True
    schedule: Schedule = Field(description="fine-tuning steps (0 keeps the base model as it is), batch, rate, seed")
    temperature: float = Field(0.05, gt=0)
    loss: Literal["infonce", "triplet"] = Field(
        "infonce",
        description="infonce: the positive against in-batch and hard negatives (MultipleNegativesRankingLoss); "
        "triplet: the positive closer to the query than its first hard negative by `triplet_margin` in cosine "
        "distance (TripletLoss, the objective of Neural Search's query and product towers); needs hard_negatives",
    )
    triplet_margin: float = Field(0.1, gt=0, description="cosine-distance margin of the triplet loss")
    adversarial: AdversarialConfig = Field(default_factory=lambda: AdversarialConfig())
    graph_regularizer: GraphRegularizerConfig = Field(default_factory=lambda: GraphRegularizerConfig())
    ood_regularizer: OodRegularizerConfig = Field(default_factory=lambda: OodRegularizerConfig())
    cross_encoder_labels: CrossEncoderLabelsConfig = Field(default_factory=lambda: CrossEncoderLabelsConfig())
    hard_negatives: int = Field(1, ge=0)
    negatives_from: Literal["teacher", "static", "bm25"] = Field(
        "teacher",
        description="what ranks the catalog for hard negatives: the off-the-shelf teacher's own index (a catalog "
        "pass with the untrained teacher), a static table distilled from it (model2vec, only the tokens the shop "
        "uses: the catalog encodes in seconds, a dense ranking without the pass), or BM25 over the item texts "
        "(no encoding at all). The cheap ones cost the teacher quality: on Home Depot the static table's negatives "
        "gave the MiniLM teacher 1.5 validation NDCG@10 points less (benchmarks/results/teacher_negatives.json)",
    )
    negatives_from_rank: int = Field(3, ge=0)
    negatives_to_rank: int = Field(30, ge=1)
    max_seq_length: int = Field(64, ge=1)
    query_prompt: str | None = Field(
        None,
        description="text put before every query the teacher encodes (e5: 'query: '), or the name of one of the "
        "model's prompts; None keeps the model's own `query` prompt, if it has one. Students read raw queries",
    )
    document_prompt: str | None = Field(
        None,
        description="text put before every catalog text the teacher encodes (e5: 'passage: '), or the name of one "
        "of the model's prompts; None keeps its own `document` (or `passage`, `corpus`) prompt, if it has one",
    )

    # At most 2 passes over the training rows: with 120 judged queries (~600 rows) 300 steps of 32 were 16 passes
    # and the contrastive loss fell to 0.004 (benchmarks/results/recipe_time_before_homedepot-minilm_small120_empty.json
    # and its run's log); on Home Depot's full split 300 steps are a third of a pass, so the cap does not bind.
    SCHEDULE: ClassVar[dict[str, Any]] = {"steps": 60, "batch_size": 32, "learning_rate": 3e-5, "epochs": 2}
    LEGACY: ClassVar[dict[str, tuple[str, ...]]] = {
        "max_steps": ("schedule.steps",),
        "batch_size": ("schedule.batch_size",),
        "learning_rate": ("schedule.learning_rate",),
        "warmup_ratio": ("schedule.warmup_ratio",),
        "seed": ("schedule.seed",),
    }

    @model_validator(mode="before")
    @classmethod
    def _schedule(cls, data: Any) -> Any:
        return _fill_schedules(data, {"schedule": cls.SCHEDULE}, cls.LEGACY)

    @model_validator(mode="after")
    def _objectives_need_negatives(self) -> TeacherConfig:
        if self.loss == "triplet" and self.hard_negatives < 1:
            raise ValueError("teacher.loss: triplet needs teacher.hard_negatives >= 1 (the triplet's negative)")
        labels = self.cross_encoder_labels
        if labels.weight > 0 and (self.loss != "infonce" or self.hard_negatives < 1):
            raise ValueError(
                "teacher.cross_encoder_labels needs teacher.loss: infonce and teacher.hard_negatives >= 1 "
                "(the margins are the positive's score less each hard negative's)"
            )
        return self


HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 16, 200, 96
"""HNSW defaults, chosen on the Home Depot validation queries (``benchmarks/serving_hnsw.py``): a graph built
with efConstruction 200 reaches a higher recall@10 at efSearch 96 (0.984) than M=32, efConstruction 80 at
efSearch 128 (0.979, the earlier default), and searches in less time (0.35 vs 0.40 ms, one thread, 54,667
384-d items)."""


class MilvusConfig(_Section):
    """A Milvus collection as the index (``index.kind: milvus``): where the server is and how it indexes."""

    uri: str | None = Field(
        None, description="Milvus Lite file (*.db) or server (http://host:19530); default RUN/index/milvus.db"
    )
    token: str | None = Field(
        None, description="Milvus token (user:password or API key); better: the MILVUS_TOKEN environment variable"
    )
    collection: str = "harness_items"
    index_type: str = Field("HNSW", description="FLAT, HNSW, IVF_FLAT, IVF_SQ8, AUTOINDEX, ... (metric IP)")
    full_text: bool = Field(
        True, description="also store the item texts with Milvus's BM25 function: hybrid search's lexical side"
    )


class IndexConfig(_Section):
    """The teacher's item index: a FAISS kind, or a Milvus collection."""

    kind: Literal["exact", "hnsw", "ivfpq", "sq8", "milvus"] = "exact"
    dim: int | None = Field(
        None,
        ge=8,
        description="Matryoshka: index only the first dim dimensions (re-normalised), for a teacher trained with "
        "MRL (EmbeddingGemma: 512, 256, 128); queries are cut the same way. FAISS kinds only. Default: all",
    )
    hnsw_m: int = Field(HNSW_M, ge=2, description="HNSW links per node")
    hnsw_ef_search: int = Field(HNSW_EF_SEARCH, ge=1, description="HNSW candidates kept while searching")
    hnsw_ef_construction: int = Field(HNSW_EF_CONSTRUCTION, ge=1, description="HNSW candidates kept while building")
    ivf_nlist: int | None = Field(None, ge=1, description="IVF lists (ivfpq, Milvus IVF_*); default ~4 sqrt(items)")
    ivf_nprobe: int = Field(32, ge=1, description="IVF lists scanned per query")
    pq_m: int | None = Field(None, ge=1, description="ivfpq bytes per item (must divide the dim); default dim / 4")
    milvus: MilvusConfig = Field(default_factory=lambda: MilvusConfig(), description="kind: milvus only")

    LEGACY: ClassVar[dict[str, str]] = {
        f"milvus_{key}": key for key in ("uri", "token", "collection", "index_type", "full_text")
    }
    """Flat keys of earlier versions (``milvus_uri``), now ``milvus.uri``; run records are read the same way."""
    ENCODING: ClassVar[dict[str, str]] = {
        "encode_batch_size": "batch_size",
        "encode_backend": "backend",
        "encode_workers": "workers",
        "shard_size": "shard_size",
        "encode_executor": "executor",
    }
    """Keys that were the index's before the ``encoding`` section had them (``RunConfig`` moves them)."""

    @model_validator(mode="before")
    @classmethod
    def _nest_milvus(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(key in data for key in cls.LEGACY):
            return data
        out = {k: v for k, v in data.items() if k not in cls.LEGACY}
        milvus = dict(out.get("milvus") or {})
        for old, new in cls.LEGACY.items():
            if old in data:
                milvus[new] = data[old]  # a flat key given beside the section is the newer word
        return {**out, "milvus": milvus}


class EncodingConfig(_Section):
    """How the teacher encodes many texts: the catalog pass (for the index and the pool's catalog texts) and the
    alignment pool's query targets."""

    batch_size: int = Field(64, ge=1)
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="what encodes the catalog (and the alignment pool): the teacher's float32 ONNX export (same "
        "embeddings), PyTorch, or auto: the GPU when there is one, else ONNX for 10,000 texts or more when the "
        "teacher exports and the onnx extra is installed, else PyTorch",
    )
    workers: int = Field(1, ge=1, description="processes (or Ray actors) encoding the catalog in shards")
    shard_size: int = Field(10_000, ge=1, description="items per shard when workers > 1")
    executor: Literal["process", "ray"] = "process"


class PoolConfig(_Section):
    """The alignment pool: every text whose teacher *query* embedding the students learn to reproduce.

    Alignment needs no labels, so it can use far more text than the judged training queries. Each source
    has an amount, from none (``0``) to all (``None``); held-out (validation and test) queries never enter.
    Generated texts and their teacher embeddings are cached on disk, keyed by what made them.
    """

    train_queries: bool = Field(True, description="the judged training queries")
    train_queries_weight: int = Field(
        1,
        ge=1,
        description="each judged training query appears this many times in the pool, so alignment weighs the "
        "queries shoppers type against the many catalog texts and pseudo-queries",
    )
    extra_queries: int | None = Field(None, ge=0, description="queries from data.extra_queries (None: all)")
    catalog_texts: int | None = Field(
        None,
        ge=0,
        description="catalog texts as alignment pairs (None: all). Their targets are the index's item embeddings "
        "when the teacher encodes queries and items alike, else the teacher encodes them as queries",
    )
    pseudo_queries: int | None = Field(
        None, ge=0, description="pseudo-queries cut from catalog texts (word spans, head phrases; None: all)"
    )
    pseudo_per_item: int = Field(2, ge=1, description="pseudo-queries cut from each catalog text")
    synthetic_items: int = Field(
        0, ge=0, description="catalog items a small language model writes queries for (needs `make install-llm`)"
    )
    synthetic_per_item: int = Field(2, ge=1, description="synthetic queries asked for per item")
    synthetic_backend: Literal["llama_cpp", "transformers"] = Field(
        "llama_cpp", description="llama-cpp-python (3x faster here) or transformers' own GGUF loading"
    )
    synthetic_threads: int = Field(
        2, ge=1, description="generation threads; use 1 when another heavy job shares the cores (llama.cpp spins)"
    )
    synthetic_executor: Literal["local", "ray"] = Field(
        "local",
        description="where the writer runs: this process, or Ray actors (one language model each, "
        "synthetic_threads CPUs each) on the cluster RAY_ADDRESS names, else a local one; same queries either way",
    )
    synthetic_workers: int = Field(2, ge=1, description="Ray actors writing synthetic queries (executor: ray)")
    seed: int = 0


PATIENCE, MIN_DELTA = 3, 0.0
"""Early-stopping defaults (``selection.patience``, ``selection.min_delta``). Replayed exactly on the validation
curves of both Home Depot MiniLM configs (the full training split and 120 training queries, every phase of both
students; ``benchmarks/early_stopping.py``, ``benchmarks/results/early_stopping.json``), patience 2 with a
min_delta of 0.002 saved the most steps within 0.001 NDCG@10; on the demo shop, whose 240 validation queries
give a noisier curve, it stopped the static student's alignment after two dips and its test NDCG@10 fell below
what the demo is built to show. Patience 3 without a min_delta lost nothing on the Home Depot curves: a phase
stops after three scorings in a row with no new best, so a noisy or slowly rising curve runs on."""


class SelectionConfig(_Section):
    """Choices made on the validation split: each phase keeps its best checkpoint, never a worse student."""

    enabled: bool = Field(True, description="score validation NDCG@10 during training and keep the best")
    evaluations: int = Field(10, ge=1, description="validation scorings per phase (evenly spaced over its steps)")
    max_queries: int | None = Field(2000, ge=1, description="validation queries scored (None: all)")
    patience: int | None = Field(
        PATIENCE,
        ge=1,
        description="early stopping: a phase stops once this many scorings in a row gained less than `min_delta` "
        "over the best so far (the best state is kept, as always); None trains every step",
    )
    min_delta: float = Field(MIN_DELTA, ge=0, description="the validation NDCG@10 gain that counts as improving")


class AlignConfig(Schedule):
    """Phase 2: alignment to the teacher's query embeddings over the alignment pool."""

    loss: Literal["mse", "cosine"] = "mse"
    score_weight: float = Field(
        0.0,
        ge=0,
        description="score matching beside the embedding: the student's softmax over the batch's teacher top "
        "`score_k` items is pulled to the teacher's (KL at `score_temperature`; FrozenItemScoreDistillLoss). "
        "0: embedding matching alone (`loss`)",
    )
    score_k: int = Field(20, ge=1, description="each pool text's teacher top items that join its batch's candidates")
    score_temperature: float = Field(0.05, gt=0)


class RefineConfig(Schedule):
    """Phase 3: contrastive refinement against the frozen teacher item embeddings."""

    temperature: float = Field(0.05, gt=0)
    hard_negatives: int = Field(2, ge=0)
    negative_margin: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="a mined negative's teacher score must stay below (1 - margin) x the query's lowest positive "
        "score, so unjudged true positives are not pushed away (sentence-transformers' relative_margin)",
    )
    align_weight: float = Field(1.0, ge=0, description="weight of the alignment (MSE) anchor in the refinement loss")


STUDENT_LEGACY: dict[str, tuple[str, ...]] = {
    **{f"align_{key}": (f"align.{key}",) for key in ("steps", "batch_size", "learning_rate", "loss")},
    **{
        f"refine_{key}": (f"refine.{key}",)
        for key in (
            "steps",
            "batch_size",
            "learning_rate",
            "temperature",
            "hard_negatives",
            "negative_margin",
            "align_weight",
        )
    },
    "seed": ("align.seed", "refine.seed"),
}
"""The flat student keys of earlier versions (``align_steps: 300``), still read from config files (and from the
records of what made each artifact: ``run.provenance`` migrates them with the same tables)."""


class _Student(_Section):
    """What every student has: a name and its two training phases."""

    name: str
    align: AlignConfig
    refine: RefineConfig

    ALIGN: ClassVar[dict[str, Any]] = {}
    REFINE: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _schedules(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in STUDENT_LEGACY):
            # A config.yaml saved by an earlier version lists every student key, the other kind's too.
            others = {name for kind in _Student.__subclasses__() for name in kind.model_fields} - set(cls.model_fields)
            data = {key: value for key, value in data.items() if key not in others}
        return _fill_schedules(data, {"align": cls.ALIGN, "refine": cls.REFINE}, STUDENT_LEGACY)


class StaticStudentConfig(_Student):
    """A token-embedding table distilled with model2vec from the (fine-tuned) teacher, or from ``base``;
    mean-pooled."""

    kind: Literal["static"] = "static"
    base: str | None = Field(
        None,
        description="the model whose tokenizer and token outputs make the table (path, hub id or bundled:NAME); "
        "default: the fine-tuned teacher. The projection and alignment carry its space into the teacher's, so a "
        "BERT-family model (WordPiece: it takes the shop's whole words) can serve a teacher whose tokenizer cannot "
        "(EmbeddingGemma, Qwen)",
    )
    # On Home Depot validation (1,500 alignment steps): subwords at 256-d kept 98.4% of the teacher's NDCG@10;
    # adding the shop's words 99.7%; and at the teacher's own width (no PCA) 100.7%
    # (benchmarks/homedepot_distillation.py --stage tune-static).
    pca_dims: int | None = Field(None, ge=1, description="the table's width after PCA; None keeps the teacher's width")
    domain_vocabulary: int = Field(
        20_000,
        ge=0,
        description="up to this many words of the training queries and catalog texts (seen at least twice, "
        "missing from the teacher's tokenizer) become whole tokens of the table, so `dewalt` has a row of its own "
        "instead of `dew ##al ##t`; 0 keeps the teacher's subword vocabulary. Only a WordPiece (BERT-family) teacher "
        "tokenizer takes whole words: for BPE or SentencePiece teachers (Gemma, Qwen) this is left out with a warning",
    )
    lowercase: bool = Field(
        False,
        description="read every text lower-cased (a Lowercase normalizer first in the table's tokenizer, saved with "
        "the student): for a cased teacher tokenizer (EmbeddingGemma, Qwen) when catalog texts are Title Case and "
        "shoppers type lower case. An uncased tokenizer (BERT uncased) is left as it is",
    )
    phrases: int = Field(
        0,
        ge=0,
        description="up to this many of the shop's frequent runs of 2-3 words (`cordless drill`, `3/4 in.`; seen 10 "
        "times or more in the query pool and catalog texts) become tokens of the table, each with a row of its own "
        "that starts as the sum of its words' rows (models/phrases.py). WordPiece tables only; 0: none",
    )
    distill_tokens: Literal["all", "shop"] = Field(
        "all",
        description="the teacher's tokens distilled into the table: all of its vocabulary (model2vec's way), or only "
        "those the shop's texts use (training and extra queries, catalog texts); the others' rows are predicted from "
        "the teacher's input embeddings. For a teacher with a huge vocabulary (EmbeddingGemma: 262,144 tokens, "
        "~35 min here; Home Depot uses ~20,000: 107 s)",
    )

    # Alignment: up to 6,000 steps of 128, capped at 10 passes over the pool (a shop with a 23k-text pool: 1,800
    # steps instead of 33 passes; Home Depot's 117k texts: no cap), and stopped when validation stops improving.
    # On the full budget the MiniLM student's validation NDCG@10 peaked at step 4,200 of 6,000 (4.6 passes) and
    # the 120-query run's at 3,600 (benchmarks/results/recipe_time_before_*.json); a cap of 4 passes cut the demo
    # shop's 7k-text pool to 219 steps and its student fell short. Earlier tuning of the rate: docs/history.md.
    # Refinement: lr 1e-4 for up to 300 steps of 64, at most 3 passes over the judged pairs.
    ALIGN: ClassVar[dict[str, Any]] = {"steps": 6000, "batch_size": 128, "learning_rate": 2e-3, "epochs": 10}
    REFINE: ClassVar[dict[str, Any]] = {"steps": 300, "batch_size": 64, "learning_rate": 1e-4, "epochs": 3}


class DenseSparseConfig(_Section):
    """DSFormer compression of a truncated student (``harnesslm.students.dense_sparse``): each linear layer of its
    transformer becomes a dense ``D`` (rank ``rank_ratio`` of the layer's smaller side) times a 2:4-sparse ``S``,
    built from the layer's SVD and trained straight through in alignment and refinement; the saved student
    holds ``D @ S`` written back as plain linear layers, so it loads, exports and serves as any other. Off
    (rank_ratio 0): on a CPU no 2:4 kernel runs; on Home Depot a 2-layer MiniLM student at rank ratio 0.5 lost
    0.041 validation NDCG@10 and was no faster than the float student (within run-to-run noise), where int8 lost
    0.005 and was the fastest (benchmarks/results/dense_sparse.json)."""

    rank_ratio: float = Field(0.0, ge=0, le=1, description="rank of D over the layer's smaller side (0: off)")
    two_four: bool = Field(True, description="prune S to 2:4 (DSFormer); false: a plain low-rank factoriser")


class TruncatedStudentConfig(_Student):
    """The first ``layers`` transformer layers of ``base`` (default: the fine-tuned teacher itself)."""

    kind: Literal["truncated"] = "truncated"
    base: str | None = None
    layers: int = Field(2, ge=1)
    layer_schedule: list[int] = Field(
        default_factory=list,
        description="progressive layer dropping: align with each of these layer counts in turn (descending, "
        "each above `layers`), dropping the top layers and re-aligning, before the final `layers`",
    )
    linear_head: bool = Field(
        True,
        description="a linear map on the pooled output, fitted in closed form to the teacher's embeddings before "
        "training (Home Depot validation, 2 layers: NDCG@10 0.262 at the start vs 0.083 without, and higher "
        "after alignment). A student whose width differs from the teacher's always has one",
    )
    max_seq_length: int = Field(32, ge=1)
    dense_sparse: DenseSparseConfig = Field(default_factory=lambda: DenseSparseConfig())

    # HD validation (2 layers, 300 steps, fitted linear head; docs/history.md): lr 2e-3 beat 1e-3 and 5e-4, and the
    # fitted head beat none. Up to 1,000 steps, capped at one pass over the pool: a transformer student's step
    # costs ~100x a static one's, and on Home Depot one pass is 915 steps (validation was still rising slowly at
    # step 1,000, recipe_time_before_homedepot-minilm_empty.json).
    ALIGN: ClassVar[dict[str, Any]] = {"steps": 1000, "batch_size": 128, "learning_rate": 2e-3, "epochs": 1}
    REFINE: ClassVar[dict[str, Any]] = {"steps": 100, "batch_size": 64, "learning_rate": 3e-5, "epochs": 3}

    @model_validator(mode="after")
    def _check(self) -> TruncatedStudentConfig:
        schedule = self.layer_schedule
        if schedule and sorted(set(schedule), reverse=True) != schedule:
            raise ValueError("layer_schedule must be strictly descending")
        if schedule and schedule[-1] <= self.layers:
            raise ValueError(f"layer_schedule {schedule} must stay above layers={self.layers}")
        return self


StudentConfig = Annotated[StaticStudentConfig | TruncatedStudentConfig, Field(discriminator="kind")]
"""One student query encoder, by ``kind``: :class:`StaticStudentConfig` or :class:`TruncatedStudentConfig`."""
_STUDENT = TypeAdapter(StudentConfig)


def student_config(values: dict[str, Any]) -> StaticStudentConfig | TruncatedStudentConfig:
    """A student's settings from a mapping (its ``kind`` picks the class)."""
    return _STUDENT.validate_python(values)


LARGE_TEACHER = 200_000_000
"""Parameters from which a teacher counts as large for its default students (MiniLM 23M and mpnet 110M are small,
EmbeddingGemma 308M large)."""


def default_students(teacher_model: str, cache_dir: Path | None = None) -> list[StudentConfig]:
    """The students of a config that names none, by the teacher's size (read from its weight files' headers).

    A small teacher gets the static student alone. On Home Depot validation it kept more of the fine-tuned MiniLM
    teacher than the 2-layer truncated student (NDCG@10 0.3772 against 0.3680 after refinement, the teacher
    0.3684; ``benchmarks/results/recipe_time_before_homedepot-minilm_empty.json``) at a tenth of its batch-1
    latency, and that student's alignment was a third of the recipe's 46 minutes. A large teacher also gets a
    small transformer of another family, MiniLM's first layers with a head into its space; one whose tokenizer
    cannot take whole words (EmbeddingGemma's) gets its static table from mpnet.
    """
    from harnesslm.models.sizes import parameter_count

    parameters = parameter_count(teacher_model, cache_dir)
    if parameters is None or parameters < LARGE_TEACHER:
        return [StaticStudentConfig(name="static")]
    return [
        StaticStudentConfig(name="static", **large_teacher_table(teacher_model, cache_dir)),
        TruncatedStudentConfig(name="minilm-3l", base="bundled:all-MiniLM-L6-v2", layers=3),
    ]


def large_teacher_table(teacher_model: str, cache_dir: Path | None = None) -> dict[str, Any]:
    """A large teacher's static table: its own when its tokenizer is WordPiece (it takes whole shop words),
    else mpnet's (`base`), whose WordPiece tokenizer does."""
    import json

    from harnesslm.models.bundled import BundledModelError, resolve_model

    try:
        tokenizer = Path(resolve_model(teacher_model, cache_dir)) / "tokenizer.json"
        kind = json.loads(tokenizer.read_text(encoding="utf-8"))["model"]["type"] if tokenizer.exists() else None
    except (BundledModelError, OSError, ValueError, KeyError):
        kind = None
    if kind == "WordPiece":
        return {}
    return {"base": "bundled:all-mpnet-base-v2", "distill_tokens": "all"}


class EvalConfig(_Section):
    baselines: list[Literal["bm25", "static-untrained", "teacher-off-the-shelf"]] = Field(
        default_factory=lambda: ["bm25", "static-untrained"],
        description="reference rows beside the teacher and students; the off-the-shelf teacher takes a catalog "
        "pass of its own, so it is a row only when listed here or when that pass is already cached",
    )
    max_queries: int | None = Field(None, ge=1)
    k: int = Field(100, ge=1)


class BenchConfig(_Section):
    threads: int = Field(2, ge=1)
    latency_queries: int = Field(200, ge=1)
    warmup: int = Field(20, ge=0)
    throughput_batch_size: int = Field(256, ge=1)


class _Scheduled(_Section):
    """A section with one ``schedule``, completed from the section's ``SCHEDULE`` defaults when given in part."""

    SCHEDULE: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _schedule(cls, data: Any) -> Any:
        return _fill_schedules(data, {"schedule": cls.SCHEDULE}, {})


class RelevanceTeacherConfig(_Scheduled):
    """The cross-encoder relevance teacher: it reads (query, item text) together and is fine-tuned on the graded
    judgments as soft targets."""

    model: str = "bundled:all-MiniLM-L6-v2"
    negatives: int = Field(
        4, ge=0, description="unjudged retrieved items per training query, target 0 (the retriever's confusions)"
    )
    schedule: Schedule = Field(description="fine-tuning the cross-encoder relevance teacher")
    adversarial: AdversarialConfig = Field(default_factory=lambda: AdversarialConfig())
    professional_terms: bool = Field(
        True,
        description="mark each (query, item) pair with the catalog's brands and model codes the query names and "
        "whether the item carries them (`| brand husky: match`), after the Alibaba paper's professional-term "
        "recognition; the terms are mined from the catalog and saved with the teacher, which reads marked pairs "
        "in training and scoring (harnesslm.rerank.professional_terms). On by default: on Home Depot it raised the "
        "relevance teacher's validation NDCG@10 by 0.073 [0.060, 0.086] and 0.064 out of distribution "
        "(benchmarks/results/relevance_ideas.json)",
    )

    SCHEDULE: ClassVar[dict[str, Any]] = {"steps": 600, "batch_size": 32, "learning_rate": 5e-5}


class RerankerConfig(_Scheduled):
    """The small cross-encoder distilled from the relevance teacher: the second stage that re-scores the
    retriever's top candidates."""

    model: str = Field(
        "teacher",
        description="start of the small cross-encoder: `teacher` (the fine-tuned relevance teacher, truncated) "
        "or any model name/path (its first layers and a new head)",
    )
    layers: int = Field(
        3,
        ge=1,
        description="first transformer layers kept in the small cross-encoder (2 did not learn on Home Depot; that "
        "comparison was made on test queries, before benchmarks/homedepot_rerank.py chose on validation, and has "
        "not been redone)",
    )
    losses: list[RankingLoss] = Field(default_factory=lambda: ["margin_mse"])
    schedule: Schedule = Field(
        description="distilling the small cross-encoder; batch_size counts queries, each with list_size items"
    )

    SCHEDULE: ClassVar[dict[str, Any]] = {"steps": 400, "batch_size": 16, "learning_rate": 2e-4}


class BiEncoderDistillConfig(_Scheduled):
    """Distilling the relevance teacher into the bi-encoder student itself (off until ``losses`` names some)."""

    losses: list[RankingLoss] = Field(
        default_factory=list, description="also distil the teacher into the bi-encoder student with these"
    )
    schedule: Schedule = Field(description="distilling the relevance teacher into the bi-encoder student")

    SCHEDULE: ClassVar[dict[str, Any]] = {"steps": 300, "batch_size": 16, "learning_rate": 2e-4}


class RelevanceConfig(_Section):
    """The re-ranking stage: a cross-encoder relevance teacher, teacher-labelled augmentation, distillation.

    The teacher (``teacher``) reads (query, item text) together and is trained on the graded judgments as soft
    targets. It then labels the retriever's top candidates of training queries that no human judged; a small
    cross-encoder (``reranker``) and, optionally, the bi-encoder student (``bi_encoder``) learn from those scores.
    """

    enabled: bool = Field(False, description="run the relevance steps as part of `harness run`")
    retriever: str | None = Field(None, description="student whose latest phase retrieves candidates; None: teacher")
    candidates_k: int = Field(50, ge=1, description="candidates retrieved per query and re-ranked")
    max_length: int = Field(64, ge=8, description="tokens of query + item text")
    teacher: RelevanceTeacherConfig = Field(default_factory=lambda: RelevanceTeacherConfig())
    distil_queries: int | None = Field(
        None, ge=1, description="training queries the students learn from (their judged pairs; None: all)"
    )
    augment_queries: int | None = Field(
        None,
        ge=0,
        description="queries whose unjudged candidates the teacher labels, the students' training queries first, "
        "then the other training queries, then the unlabeled pool (0: none, None: all)",
    )
    extra_unlabeled: bool = Field(True, description="also label candidates of the unlabeled/extra query pool")
    augment_k: int = Field(20, ge=1, description="unjudged candidates the teacher labels per augmented query")
    list_size: int = Field(8, ge=2, description="items per query in a listwise example (margin-MSE: pairs of them)")
    reranker: RerankerConfig = Field(default_factory=lambda: RerankerConfig())
    bi_encoder: BiEncoderDistillConfig = Field(default_factory=lambda: BiEncoderDistillConfig())
    latency_queries: int = Field(100, ge=1, description="queries timed when re-ranking K candidates")
    eval_queries: int | None = Field(None, ge=1, description="test queries re-ranked in evaluation (None: all)")
    seed: int = 0

    MOVED: ClassVar[dict[str, tuple[str, ...]]] = {
        **{f"teacher_{key}": (f"teacher.schedule.{key}",) for key in ("steps", "batch_size", "learning_rate")},
        "student_steps": ("reranker.schedule.steps",),
        "student_batch_size": ("reranker.schedule.batch_size", "bi_encoder.schedule.batch_size"),
        "student_learning_rate": ("reranker.schedule.learning_rate",),
        "bi_encoder_steps": ("bi_encoder.schedule.steps",),
        "bi_encoder_learning_rate": ("bi_encoder.schedule.learning_rate",),
        "teacher_model": ("teacher.model",),
        "teacher_negatives": ("teacher.negatives",),
        "student_model": ("reranker.model",),
        "student_layers": ("reranker.layers",),
        "student_losses": ("reranker.losses",),
        "bi_encoder_losses": ("bi_encoder.losses",),
    }
    """Keys of earlier versions and where they are now: flat keys (``student_layers``), and the schedules that
    were sections of their own (``student: {steps: ...}`` is ``reranker.schedule``); run records are read the
    same way."""
    SCHEDULE_SECTIONS: ClassVar[dict[str, str]] = {
        "teacher": "teacher",
        "student": "reranker",
        "bi_encoder": "bi_encoder",
    }

    @model_validator(mode="before")
    @classmethod
    def _nested(cls, data: Any) -> Any:
        """Earlier shapes into the nested one; a given ``seed`` also seeds each schedule that sets none."""
        if not isinstance(data, dict):
            return data
        out = {k: v for k, v in data.items() if k not in cls.MOVED}
        schedule_keys = set(Schedule.model_fields)
        for old, new in cls.SCHEDULE_SECTIONS.items():
            section = data.get(old)
            if isinstance(section, dict) and schedule_keys.issuperset(section) and section:
                out.pop(old, None)  # a schedule that was the section itself
                out[new] = {**(out.get(new) if isinstance(out.get(new), dict) else {}), "schedule": dict(section)}
        for old, targets in cls.MOVED.items():
            if old in data:
                for target in targets:
                    section, *path, key = target.split(".")
                    node = out.setdefault(section, {})
                    if not isinstance(node, dict):
                        continue
                    for part in path:
                        node = node.setdefault(part, {})
                    node.setdefault(key, data[old])
        if "seed" in data:
            for section in cls.SCHEDULE_SECTIONS.values():
                node = out.setdefault(section, {})
                if isinstance(node, dict):
                    node.setdefault("schedule", {})
                    if isinstance(node["schedule"], dict):
                        node["schedule"].setdefault("seed", data["seed"])
        return out


class RunConfig(_Section):
    """The whole recipe: data, teacher, index, students, evaluation and benchmark settings."""

    data: DataConfig
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    encoding: EncodingConfig = Field(default_factory=EncodingConfig)
    students: list[StudentConfig] = Field(
        description="the query encoders to train; when none are given, the defaults for the teacher's size "
        "(`default_students`)"
    )
    pool: PoolConfig = Field(default_factory=PoolConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    bench: BenchConfig = Field(default_factory=BenchConfig)
    relevance: RelevanceConfig = Field(default_factory=RelevanceConfig)
    cache_dir: Path | None = Field(None, description="embedding cache; default: ~/.cache/harnesslm")

    @model_validator(mode="before")
    @classmethod
    def _encoding_out_of_the_index(cls, data: Any) -> Any:
        """A config of earlier versions kept the encoding keys in ``index`` (``index.encode_workers``)."""
        index = data.get("index") if isinstance(data, dict) else None
        if not isinstance(index, dict) or not any(key in index for key in IndexConfig.ENCODING):
            return data
        encoding = dict(data.get("encoding") or {})
        for old, new in IndexConfig.ENCODING.items():
            if old in index:
                encoding[new] = index[old]
        rest = {k: v for k, v in index.items() if k not in IndexConfig.ENCODING}
        return {**data, "index": rest, "encoding": encoding}

    @model_validator(mode="before")
    @classmethod
    def _students_for_the_teacher(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("students") is None:
            teacher = data.get("teacher") or {}
            model = teacher.model if isinstance(teacher, TeacherConfig) else teacher.get("model")
            cache = data.get("cache_dir")
            data = {
                **data,
                "students": default_students(model or TeacherConfig().model, Path(cache) if cache else None),
            }
        return data

    @model_validator(mode="after")
    def _unique_students(self) -> RunConfig:
        names = [s.name for s in self.students]
        if len(names) != len(set(names)):
            raise ValueError(f"student names must be unique, got {names}")
        return self

    def student(self, name: str) -> StudentConfig:
        for student in self.students:
            if student.name == name:
                return student
        raise KeyError(f"no student named {name!r}; configured: {[s.name for s in self.students]}")


class ConfigError(ValueError):
    """A config file that cannot be read as YAML, or whose settings do not fit the data or models."""


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML config; relative data paths are resolved against the config file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data:, teacher:, ...), got {type(raw).__name__}")
    config = RunConfig.model_validate(raw)
    return resolve_paths(config, path.parent)


def resolve_paths(config: RunConfig, base: Path) -> RunConfig:
    """Make every data path absolute relative to ``base`` (the folder of the config file)."""
    data = config.data

    def fix(source):
        path = source.path
        return source if path.is_absolute() else source.model_copy(update={"path": (base / path).resolve()})

    data = data.model_copy(
        update={
            "catalog": fix(data.catalog),
            "judgments": fix(data.judgments),
            "extra_queries": [fix(source) for source in data.extra_queries],
        }
    )
    cache_dir = config.cache_dir
    if cache_dir is not None and not cache_dir.is_absolute():
        cache_dir = (base / cache_dir).resolve()
    return config.model_copy(update={"data": data, "cache_dir": cache_dir})


def updated(config: RunConfig | dict[str, Any], patch: dict[str, Any]) -> RunConfig:
    """A new, validated config: ``patch`` (nested sections, e.g. ``{"pool": {"synthetic_items": 5}}``) merged
    into ``config`` (a config, or the raw sections of one still to be completed), which stays as it was. How
    the CLI and benchmarks override a setting."""
    base = config if isinstance(config, dict) else config.model_dump()
    return RunConfig.model_validate(_merged(base, patch))


def updated_student(
    student: StaticStudentConfig | TruncatedStudentConfig, patch: dict[str, Any]
) -> StaticStudentConfig | TruncatedStudentConfig:
    """A new, validated student: ``patch`` (e.g. ``{"align": {"steps": 300}}``) merged into ``student``."""
    return student_config(_merged(student.model_dump(), patch))


def _merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML, for the run directory."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
