"""The service's request and response models and its settings (pydantic): what the OpenAPI schema shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FilterValues = str | list[str]
SearchMode = Literal["dense", "lexical", "hybrid"]
MODE_HELP = (
    "dense (the query encoder over the teacher's index), lexical (BM25 over the catalog) or hybrid (the two "
    "fused by weighted reciprocal-rank fusion, the weight chosen on validation queries); default: the "
    "service's default_mode"
)


class ServiceSettings(BaseModel):
    """Request limits and micro-batching of the search service."""

    model_config = ConfigDict(extra="forbid")

    default_k: int = Field(10, ge=1, description="k when a request does not give one")
    max_k: int = Field(100, ge=1, description="largest k a request may ask for")
    max_query_chars: int = Field(512, ge=1, description="longest query accepted, in characters")
    max_batch: int = Field(64, ge=1, description="most queries in one POST /search/batch request")
    batching: bool | None = Field(
        True,
        description="micro-batch concurrent requests through the encoder (None: decided by the encoder, by "
        "`harness serve`; the app itself then batches)",
    )
    batch_window_ms: float = Field(
        2.0, ge=0, description="how long the batcher waits for more requests after the first one arrives"
    )
    max_encode_batch: int = Field(64, ge=1, description="most queries the batcher encodes in one call")
    inline_search: bool = Field(
        False,
        description="without batching, encode and search on the event loop instead of a worker thread: for an "
        "encoder that takes microseconds (a static student), the thread hop costs more than the work",
    )
    max_filter_values: int = Field(256, ge=1, description="most filter values in one request, all fields together")
    default_mode: SearchMode = Field("dense", description="search mode of a request that names none")

    @model_validator(mode="after")
    def _default_k_within_max_k(self) -> ServiceSettings:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k {self.default_k} is above max_k {self.max_k}")
        return self


# request / response models ---------------------------------------------------------------------------------
class SearchRequest(BaseModel):
    """One query."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "k": "5" or true is an error, not k=5 or k=1

    query: str = Field(..., description="the search text", examples=["cordless drill 20v"])
    k: int | None = Field(None, description="number of hits (default: the service's default_k; at most max_k)")
    filters: dict[str, FilterValues] | None = Field(
        None,
        description="equality filters on item fields: {field: value} or {field: [values]} (any of them); "
        "all fields must match. Values compare as text.",
        examples=[{"category": "tools", "brand": ["Kestrel", "Torqmax"]}],
    )
    mode: SearchMode | None = Field(None, description=MODE_HELP)


class BatchSearchRequest(BaseModel):
    """Several queries with the same k and filters."""

    model_config = ConfigDict(extra="forbid", strict=True)

    queries: list[str] = Field(..., description="the search texts (at most max_batch)", examples=[["hammer", "romex"]])
    k: int | None = Field(None, description="number of hits per query (default: default_k; at most max_k)")
    filters: dict[str, FilterValues] | None = Field(None, description="as in POST /search, applied to every query")
    mode: SearchMode | None = Field(None, description=MODE_HELP)


class Hit(BaseModel):
    """One item found for a query."""

    item_id: str = Field(..., description="the catalog's item id")
    score: float = Field(
        ...,
        description="dense: cosine of the query and item embeddings; lexical: BM25 score; hybrid: fused "
        "reciprocal-rank score",
    )
    title: str = Field(..., description="the item's text as indexed")
    fields: dict[str, str] = Field(default_factory=dict, description="the item's extra catalog fields")


class SearchResponse(BaseModel):
    """The hits for one query, best first."""

    query: str = Field(..., description="the query as sent")
    k: int = Field(..., description="the number of hits asked for (fewer come back when fewer items match)")
    mode: SearchMode = Field("dense", description="how the hits were found")
    hits: list[Hit]
    took_ms: float = Field(..., description="server time for the request, queueing included")


class BatchSearchResponse(BaseModel):
    """One result per query, in request order."""

    results: list[SearchResponse]
    took_ms: float


class ModelInfo(BaseModel):
    """Which query encoder is served, and the teacher space it embeds into."""

    name: str = Field(..., description="student name, or 'teacher'")
    kind: str = Field(..., description="static, truncated or teacher")
    phase: str | None = Field(None, description="aligned or refined (students)")
    encoder: str = Field(..., description="pytorch, numpy, onnx, onnx-int8 or teacher")
    space: str = Field(..., description="fingerprint of the teacher space the encoder was trained for")


class IndexInfo(BaseModel):
    kind: str
    size: int
    dim: int
    space: str = Field(..., description="fingerprint of the teacher space the index was built in")
    exact_fallback: bool = Field(False, description="filtered and deep searches of an ANN index go to exact search")
    recall_vs_exact: dict[str, float] | None = Field(
        None, description="the ANN index's measured recall@k against exact search for the served encoder's queries"
    )
    searches: dict[str, int] | None = Field(None, description="searches answered by the ANN index and exactly")


class BatcherStats(BaseModel):
    enabled: bool
    inline: bool = False
    window_ms: float
    max_encode_batch: int
    encoder_calls: int = Field(..., description="encoder calls made so far")
    queries: int = Field(..., description="queries encoded so far")
    mean_batch: float = Field(..., description="queries per encoder call")


class HealthResponse(BaseModel):
    status: str
    model: ModelInfo
    index: IndexInfo
    teacher_space: str
    filter_fields: list[str]
    modes: list[str] = Field(..., description="search modes this service answers")
    hybrid_weight: float | None = Field(None, description="dense weight of the hybrid fusion (0: BM25 only)")
    compare: list[str] = Field(..., description="systems shown side by side on the /compare page")
    limits: ServiceSettings
    batcher: BatcherStats
    swaps: dict[str, Any] | None = Field(
        None, description="hot swaps of the served encoder and index: how many, how many refused, the last one"
    )


class CompareSystem(BaseModel):
    """One system's top hits for the comparison page."""

    name: str = Field(..., description="student, hybrid, bm25 or teacher")
    label: str = Field(..., description="what the page shows as the column title")
    hits: list[Hit]
    took_ms: float = Field(..., description="server time of this system's search alone")


class CompareResponse(BaseModel):
    """Every compared system's top-k for one query, and how much their top-k lists share."""

    query: str
    k: int
    systems: list[CompareSystem]
    overlap: dict[str, int] = Field(..., description="'a|b' -> items in both systems' top k")
