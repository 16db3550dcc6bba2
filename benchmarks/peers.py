"""Benchmark: our query encoders against the public methods that map a small encoder into a fixed teacher's
space, each given the same fine-tuned teacher, item index, alignment pool and split of a finished run.

Methods (``--methods``):

* ``ours``: every student of the run's config, through :func:`harnesslm.distill_query_encoder` (the recipe's
  own code), plus ``--students`` of other kinds (e.g. a MiniLM-based transformer student for a large teacher).
* ``model2vec``: model2vec 0.10's ``StaticModelForSimilarity.fit(texts, targets)`` (cosine loss, early stopping
  on its own 10% split) from model2vec's ``distill`` of the teacher.
* ``pynife``: pyNIFE's method (Tulkens, MIT; pynife 0.1.0 does not run on sentence-transformers 6, so it is
  ported here): a table with one row per teacher token, each row the teacher's embedding of that token alone,
  trained with a cosine loss wrapped in a Matryoshka loss on the documents, then on the queries (lr 0.01,
  batch 128, cosine schedule down to 10% of the rate, 10% warm-up, weight decay 0.01, 5 epochs). For a teacher
  with a huge vocabulary only the tokens the shop's texts use get rows (pyNIFE's tokenizer expansion keeps
  only the tokens its data uses).
* ``st-distill``: sentence-transformers' ``EmbedDistillLoss`` (cosine, with its learnable projection when the
  widths differ) training a ``StaticEmbedding.from_distillation`` table.
* ``leaf``: a LEAF-style student (Vujanic & Rueckstiess, 2025): all-MiniLM-L6-v2, mean pooling, a linear layer
  into the teacher's width and L2 normalisation, trained with an L2 loss on the pool's documents and queries.

Each peer runs at its authors' published defaults and with its learning rate and epochs tuned on the
**validation** queries (a grid of at most four points, like ours). Stages:

* ``train`` (default): trains every variant not yet cached (``RUN/peers/``, resumable), times batch-1
  encoding, and prints validation NDCG@10. The validation queries are split in two (``data.splits.halves``):
  checkpoints and tuned rows are chosen on one half, figures reported on the other, so no row is scored on
  the queries it was chosen on. Writes ``benchmarks/results/peers_<name>_validation.json``.
* ``--final``: scores the **test** queries once for each method's default row and its tuned row (the best
  validation variant): NDCG@10 and Recall@100 with paired-bootstrap 95% intervals, recovery of the teacher,
  the paired difference to our shipped student, batch-1 p50 and its ratio to the teacher, training time and
  size. Refuses to run twice on the same commit without ``--rescore`` (which it records).

    python benchmarks/peers.py --run runs/hd-minilm --name minilm
    python benchmarks/peers.py --run runs/hd-minilm --name minilm --final
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harnesslm.config import updated
from harnesslm.data.splits import halves
from harnesslm.distill import ItemSpace, distill_query_encoder
from harnesslm.encoding.cache import encode
from harnesslm.evaluation.bootstrap import PairedBootstrap
from harnesslm.evaluation.latency import measure_latency, torch_threads
from harnesslm.evaluation.metrics import RelevanceScale, evaluate_rankings, qrels_from_judgments
from harnesslm.models.prompts import prompt_of
from harnesslm.pipeline import steps
from harnesslm.run.catalog_embeddings import item_embeddings
from harnesslm.run.run_dir import RunDir
from harnesslm.training.teacher_finetune import positive_pairs
from results_json import ResultsFile, refuse_second_final

ROOT = Path(__file__).resolve().parents[1]
console = Console()
LATENCY_QUERIES = 300
THREADS = 2


# what every method is given ----------------------------------------------------------------------------------
@dataclass
class Race:
    """The shared inputs: one teacher, its item index, one alignment pool, one split."""

    run: RunDir
    cache: Path
    items: ItemSpace
    texts: list[str]
    targets: np.ndarray
    documents: slice  # the pool's catalog texts (the rest are query-like)
    validation: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]]
    train_pairs: list[tuple[str, str]]
    corpus: list[str]
    scale: RelevanceScale
    index: object = None
    choose: dict = None

    def __post_init__(self) -> None:
        self.index = self.items.index()
        self.choose = {q: self.validation[q] for q in halves(list(self.validation))[0]}

    @classmethod
    def of(cls, run: RunDir) -> Race:
        pool = steps.alignment_pool(run, run.teacher, progress=False)
        start = sum(s["kept"] for name, s in pool.sources.items() if name in ("train_queries", "extra_queries"))
        documents = slice(start, start + pool.sources.get("catalog_texts", {}).get("kept", 0))
        pairs = positive_pairs(run.split("train"), run.config.data.relevant_at)
        judged = {s: run.split(s) for s in ("validation", "test")}
        return cls(
            run=run,
            cache=run.root / "peers",
            items=ItemSpace(run.catalog["item_id"].tolist(), item_embeddings(run, run.teacher, progress=False)),
            texts=pool.texts,
            targets=pool.targets,
            documents=documents,
            validation=qrels_from_judgments(*(judged["validation"][c] for c in ("query", "item_id", "label"))),
            test=qrels_from_judgments(*(judged["test"][c] for c in ("query", "item_id", "label"))),
            train_pairs=list(zip(pairs.queries, pairs.positives, strict=True)),
            corpus=steps.shop_texts(run),
            scale=RelevanceScale(run.config.data.label_offset, run.config.data.relevant_at),
        )

    @property
    def teacher(self):
        return self.run.teacher

    def pool_with(self, overrides: dict | None) -> tuple[list[str], np.ndarray]:
        """The alignment pool, or the one ``pool:`` settings ``overrides`` make (new texts encoded, cached)."""
        if not overrides:
            return self.texts, self.targets
        config = updated(self.run.config, {"pool": overrides})
        pool = steps.alignment_pool(RunDir(self.run.root, config), self.teacher, progress=True)
        return pool.texts, pool.targets

    def split_texts(self) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
        """(documents, their targets, queries, their targets): the pool split by what its texts are."""
        rows = np.arange(len(self.texts))
        doc = (rows >= self.documents.start) & (rows < self.documents.stop)
        pick = lambda mask: ([t for t, m in zip(self.texts, mask, strict=True) if m], self.targets[mask])  # noqa: E731
        return (*pick(doc), *pick(~doc))


@dataclass
class Trained:
    """A trained query encoder: batch encoding (normalised rows in the teacher's space), batch-1 encoding for
    timing, its runtime's name, and its size in parameters."""

    encode: Callable[[list[str]], np.ndarray]
    encode_one: Callable[[str], object]
    runtime: str
    parameters: int
    report: dict


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _parameters(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _served(student, folder: Path) -> Trained:
    """A sentence-transformers student on its fastest runtime here: the numpy table for a static one, ONNX
    int8 (the project's export, checked against PyTorch) for a transformer."""
    from harnesslm.students.numpy_encoder import StaticQueryEncoder

    report = getattr(student, "distill_report", {})
    static = StaticQueryEncoder.from_model(student)
    if static is not None:
        return Trained(static.encode, lambda q: static.encode([q]), "numpy", _parameters(student), report)
    from harnesslm.onnx.exporter import export_onnx
    from harnesslm.onnx.runtime import OnnxQueryEncoder

    info = export_onnx(student, folder / "onnx")
    onnx = OnnxQueryEncoder.load(folder / "onnx", quantized=info.int8_rejected is None, threads=THREADS)
    runtime = "onnx-int8" if onnx.quantized else "onnx-fp32"
    return Trained(onnx.encode, lambda q: onnx.encode([q]), runtime, _parameters(student), report)


# the methods -------------------------------------------------------------------------------------------------
def train_ours(race: Race, hp: dict, folder: Path) -> Trained:
    """One student of the run's config (or of ``hp['settings']``, whose ``pool`` key, if any, changes the
    alignment pool: a lever), through the recipe's own code."""
    settings = dict(hp.get("settings") or race.run.config.student(hp["student"]).model_dump())
    texts, targets = race.pool_with(settings.pop("pool", None))
    student = distill_query_encoder(
        race.teacher,
        texts,
        targets,
        settings=settings,
        items=race.items,
        validation=race.choose,  # the half of validation where choices are made
        train_pairs=race.train_pairs,
        corpus=race.corpus,
        selection=race.run.config.selection,
        scale=race.scale,
    )
    return _served(student, folder)


def _model2vec_base(race: Race):
    """model2vec's ``distill`` of the teacher at its defaults (256-d PCA), once per teacher."""
    from model2vec import StaticModel
    from model2vec.distill import distill

    folder = race.cache / "model2vec-distilled"
    if not (folder / "config.json").exists():
        distill(str(race.run.teacher_dir)).save_pretrained(str(folder))
    return StaticModel.from_pretrained(str(folder))


def train_model2vec(race: Race, hp: dict, folder: Path) -> Trained:
    from model2vec.train import StaticModelForSimilarity

    model = StaticModelForSimilarity.from_static_model(model=_model2vec_base(race), n_layers=hp["n_layers"])
    model.fit(race.texts, torch.from_numpy(race.targets), learning_rate=hp["learning_rate"])
    return Trained(
        lambda qs: _normalised(model.encode(qs)),
        lambda q: model.encode([q]),
        "model2vec",
        _parameters(model),
        {"head_layers": hp["n_layers"]},
    )


def pynife_rows(teacher, token_ids: list[int], batch_size: int = 256) -> torch.Tensor:
    """pyNIFE's initialisation: each token alone, between the tokenizer's special tokens, through the whole
    teacher; its sentence embedding is the token's row (``pynife.initialization.initialize_from_model``, whose
    fuzzy match of a new tokenizer's tokens is not needed here: the table keeps the teacher's own tokens)."""
    tokenizer = teacher.tokenizer
    prefix, suffix = special_tokens_around(tokenizer)
    inputs = [[*prefix, t, *suffix] for t in token_ids]
    pad = tokenizer.pad_token_id or 0
    order = np.argsort([len(x) for x in inputs], kind="stable")
    out = torch.empty(len(inputs), teacher.get_embedding_dimension())
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            rows = order[start : start + batch_size]
            batch = torch.nn.utils.rnn.pad_sequence(
                [torch.tensor(inputs[r]) for r in rows], batch_first=True, padding_value=pad
            )
            features = {"input_ids": batch, "attention_mask": (batch != pad).long()}
            out[torch.from_numpy(rows)] = teacher.forward(features)["sentence_embedding"].float()
    return out


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (``[CLS]``/``[SEP]``, ``<bos>``/``<eos>``):
    pyNIFE's ``build_inputs_with_special_tokens`` is gone from transformers 5, so they are read off an encoding."""
    marked = tokenizer("x", add_special_tokens=True)["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    for start in range(len(marked) - len(plain) + 1):
        if marked[start : start + len(plain)] == plain:
            return marked[:start], marked[start + len(plain) :]
    raise ValueError("cannot find a text's own ids inside its encoding with special tokens")


def train_pynife(race: Race, hp: dict, folder: Path) -> Trained:
    """pyNIFE's method, ported: token-by-token table, cosine + Matryoshka loss, documents then queries."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding

    from harnesslm.students.shop_tokens import used_token_ids
    from harnesslm.students.table_rows import rows_in_use
    from harnesslm.students.vocabulary import unpadded

    teacher = race.teacher
    tokenizer = unpadded(teacher.tokenizer).backend_tokenizer
    vocab = tokenizer.get_vocab_size()
    huge = vocab > 100_000  # EmbeddingGemma: 262,144 tokens; only those the shop's texts use get rows
    kept = used_token_ids(tokenizer, race.corpus) if huge else list(range(vocab))
    table = torch.zeros(vocab, teacher.get_embedding_dimension())
    table[kept] = pynife_rows(teacher, kept)
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=table), Normalize()])
    dim = model.get_embedding_dimension()
    dims = [16]
    while dims[-1] * 2 < dim:
        dims.append(dims[-1] * 2)
    documents, doc_targets, queries, query_targets = race.split_texts()
    seconds = {}
    for stage, texts, targets in (("documents", documents, doc_targets), ("queries", queries, query_targets)):
        if not texts:
            continue
        data = Dataset.from_dict({"text": texts, "label": targets.tolist()}).shuffle(seed=0)
        steps_ = max(1, math.ceil(len(data) / hp["batch_size"]) * hp["epochs"])
        args = Args(
            output_dir=str(folder / "trainer"),
            max_steps=steps_,
            per_device_train_batch_size=hp["batch_size"],
            learning_rate=hp["learning_rate"],
            lr_scheduler_type="cosine_warmup_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": 0.10, "num_cycles": 0.5},
            warmup_ratio=0.1,
            weight_decay=0.01,
            max_grad_norm=1.0,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=0,
        )
        start = time.perf_counter()
        # A huge table trains only the rows its texts use (training/table_rows.py: same outputs, a fraction
        # of AdamW's work); a BERT-sized one trains whole, as pyNIFE does.
        with rows_in_use(model, texts) if huge else nullcontext((model, [])) as (trained, write_back):
            loss = MatryoshkaLoss(trained, _CosineLoss(trained), matryoshka_dims=[*dims, dim])
            trainer = SentenceTransformerTrainer(
                model=trained, args=args, train_dataset=data, loss=loss, callbacks=write_back or None
            )
            trainer.train()
        seconds[stage] = round(time.perf_counter() - start, 1)
    shutil.rmtree(folder / "trainer", ignore_errors=True)
    trained = _served(model, folder)
    trained.report = {"table_rows_from_teacher": len(kept), "stage_seconds": seconds}
    return trained


class _CosineLoss(torch.nn.Module):
    """pyNIFE's ``CosineLoss``: 1 - cos(student, teacher), the teacher cut to the student's (Matryoshka) width."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, features, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self.model(features[0])["sentence_embedding"]
        return 1 - torch.nn.functional.cosine_similarity(embeddings, labels[:, : embeddings.shape[1]]).mean()


def train_st_distill(race: Race, hp: dict, folder: Path) -> Trained:
    """sentence-transformers' EmbedDistillLoss on a StaticEmbedding distilled from the teacher (model2vec)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, StaticEmbedding

    _model2vec_base(race)
    static = StaticEmbedding.from_model2vec(str(race.cache / "model2vec-distilled"))
    model = SentenceTransformer(modules=[static], device="cpu")
    teacher_dim = race.targets.shape[1]
    projection = teacher_dim if static.get_embedding_dimension() != teacher_dim else None
    loss = EmbedDistillLoss(model, distance_metric="cosine", projection_dim=projection)
    data = Dataset.from_dict({"text": race.texts, "label": race.targets.tolist()}).shuffle(seed=0)
    args = Args(
        output_dir=str(folder / "trainer"),
        num_train_epochs=hp["epochs"],
        per_device_train_batch_size=hp["batch_size"],
        learning_rate=hp["learning_rate"],
        warmup_ratio=hp.get("warmup_ratio", 0.0),
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    shutil.rmtree(folder / "trainer", ignore_errors=True)
    modules = [static]
    if projection:
        dense = Dense(static.get_embedding_dimension(), teacher_dim, bias=True, activation_function=None)
        dense.linear.load_state_dict(loss.projection.state_dict())
        modules.append(dense)
    return _served(SentenceTransformer(modules=[*modules, Normalize()], device="cpu"), folder)


def train_leaf(race: Race, hp: dict, folder: Path) -> Trained:
    """LEAF-style: MiniLM-L6 + mean pooling + a linear map to the teacher's width + normalisation, L2 loss on
    documents and queries together (no closed-form start, no validation selection: the paper's recipe)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    from harnesslm.models.bundled import resolve_model

    base = SentenceTransformer(resolve_model("bundled:all-MiniLM-L6-v2"), device="cpu")
    base.max_seq_length = 32
    torch.manual_seed(0)
    head = Dense(base.get_embedding_dimension(), race.targets.shape[1], bias=True, activation_function=None)
    model = SentenceTransformer(modules=[base[0], base[1], head, Normalize()], device="cpu")
    data = Dataset.from_dict({"text": race.texts, "label": race.targets.tolist()}).shuffle(seed=0)
    args = Args(
        output_dir=str(folder / "trainer"),
        num_train_epochs=hp["epochs"],
        per_device_train_batch_size=hp["batch_size"],
        learning_rate=hp["learning_rate"],
        warmup_ratio=0.1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    loss = EmbedDistillLoss(model, distance_metric="mse")
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    shutil.rmtree(folder / "trainer", ignore_errors=True)
    return _served(model, folder)


@dataclass(frozen=True)
class Method:
    train: Callable[[Race, dict, Path], Trained]
    default: dict
    grid: dict[str, dict]  # tuned variants: label -> settings over the default


METHODS: dict[str, Method] = {
    # model2vec's fit: from_static_model's defaults (a 512-unit hidden layer), lr 1e-3, early stopping.
    "model2vec": Method(
        train_model2vec,
        {"n_layers": 1, "learning_rate": 1e-3},
        {
            "lr 3e-3": {"learning_rate": 3e-3},
            "lr 1e-2": {"learning_rate": 1e-2},
            "no hidden layer, lr 3e-3": {"n_layers": 0, "learning_rate": 3e-3},
        },
    ),
    # pyNIFE's recommended hyperparameters (docs/README.md of pynife).
    "pynife": Method(
        train_pynife,
        {"learning_rate": 0.01, "batch_size": 128, "epochs": 5},
        {
            "lr 3e-3": {"learning_rate": 3e-3},
            "2 epochs": {"epochs": 2},
            "lr 3e-2, 2 epochs": {"learning_rate": 3e-2, "epochs": 2},
        },
    ),
    # EmbedDistillLoss's docstring example: the trainer's defaults (lr 5e-5, batch 8, 3 epochs).
    "st-distill": Method(
        train_st_distill,
        {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3},
        {
            "lr 2e-3, batch 128": {"learning_rate": 2e-3, "batch_size": 128, "warmup_ratio": 0.1},
            "lr 1e-2, batch 128": {"learning_rate": 1e-2, "batch_size": 128, "warmup_ratio": 0.1},
            "lr 1e-2, batch 128, 6 epochs": {
                "learning_rate": 1e-2,
                "batch_size": 128,
                "epochs": 6,
                "warmup_ratio": 0.1,
            },
        },
    ),
    # LEAF: small batches (the paper's point: no large-batch infrastructure), AdamW; one epoch of our pool.
    "leaf": Method(
        train_leaf,
        {"learning_rate": 1e-4, "batch_size": 32, "epochs": 1},
        {"lr 3e-4": {"learning_rate": 3e-4}, "lr 3e-4, 2 epochs": {"learning_rate": 3e-4, "epochs": 2}},
    ),
}


# running and scoring -------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def variants(race: Race, methods: list[str], extra_students: list[dict]) -> list[tuple[str, str, dict]]:
    """(method, label, settings) for every row to train: ours per student, each peer's default and grid."""
    out = []
    if "ours" in methods:
        out += [("ours", s.name, {"student": s.name}) for s in race.run.config.students]
        out += [("ours", s["name"], {"settings": s}) for s in extra_students]
    for name in methods:
        if name in METHODS:
            method = METHODS[name]
            out.append((name, "default", method.default))
            out += [(name, label, {**method.default, **over}) for label, over in method.grid.items()]
    return out


def trained_variant(race: Race, method: str, label: str, hp: dict) -> dict:
    """Train one variant (or read it from the cache): its embeddings of the validation and test queries, its
    batch-1 latency, training seconds and size. Test embeddings are stored, never scored, until ``--final``."""
    folder = race.cache / method / slug(label)
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text())["settings"] == json.loads(json.dumps(hp, default=str)):
        return json.loads(meta_path.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    console.print(f"[bold]{method} / {label}[/bold]: training")
    start = time.perf_counter()
    with torch_threads(THREADS):
        trained = (train_ours if method == "ours" else METHODS[method].train)(race, hp, folder)
        seconds = time.perf_counter() - start
        for split, qrels in (("validation", race.validation), ("test", race.test)):
            np.save(folder / f"{split}.npy", _normalised(trained.encode(list(qrels))))
        latency = measure_latency(trained.encode_one, list(race.validation)[:LATENCY_QUERIES], warmup=20)
    meta = {
        "method": method,
        "label": label,
        "settings": json.loads(json.dumps(hp, default=str)),
        "train_seconds": round(seconds, 1),
        "parameters": trained.parameters,
        "size_mb": round(trained.parameters * 4 / 2**20, 1),
        "runtime": trained.runtime,
        "p50_ms": latency.p50_ms,
        "p99_ms": latency.p99_ms,
        "report": json.loads(json.dumps(trained.report, default=str)),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def teacher_row(race: Race) -> dict:
    """The teacher's embeddings of both splits and its batch-1 latency on its fastest runtime here."""
    folder = race.cache / "teacher"
    if (folder / "meta.json").exists():
        return json.loads((folder / "meta.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    teacher = race.teacher
    queries = list(race.validation)[:LATENCY_QUERIES]
    runtimes = {}
    with torch_threads(THREADS):
        for split, qrels in (("validation", race.validation), ("test", race.test)):
            np.save(folder / f"{split}.npy", encode(teacher, list(qrels), batch_size=128, role="query"))
        runtimes["pytorch"] = measure_latency(lambda q: teacher.encode_query([q], convert_to_numpy=True), queries)
        onnx = _teacher_onnx(teacher, folder / "onnx")
        if onnx is not None:
            prompt = prompt_of(teacher, "query")
            runtimes["onnx-fp32"] = measure_latency(lambda q: onnx.encode([prompt + q]), queries)
    fastest = min(runtimes, key=lambda name: runtimes[name].p50_ms)
    meta = {
        "runtime": fastest,
        "p50_ms": runtimes[fastest].p50_ms,
        "p99_ms": runtimes[fastest].p99_ms,
        "p50_ms_by_runtime": {name: stats.p50_ms for name, stats in runtimes.items()},
        "parameters": _parameters(teacher),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _teacher_onnx(teacher, folder: Path):
    """The teacher's float32 ONNX export, when it exports (EmbeddingGemma does not here); None otherwise."""
    from harnesslm.onnx.exporter import export_onnx
    from harnesslm.onnx.runtime import OnnxQueryEncoder

    try:
        export_onnx(teacher, folder, quantize=False)
    except Exception as error:  # any failure means: no ONNX runtime for this teacher, PyTorch is timed alone
        console.print(f"[yellow]the teacher does not export to ONNX ({type(error).__name__}): timed in PyTorch")
        return None
    return OnnxQueryEncoder.load(folder, threads=THREADS)


def per_query(race: Race, folder: Path, split: str) -> dict[str, np.ndarray]:
    """Per-query NDCG@10 and Recall@100 of the embeddings saved in ``folder`` for ``split``."""
    qrels = race.validation if split == "validation" else race.test
    queries = list(qrels)
    embeddings = np.load(folder / f"{split}.npy")
    ranked, _ = race.index.search(embeddings, 100)
    report = evaluate_rankings(dict(zip(queries, ranked, strict=True)), qrels, race.scale)
    return {m: np.array([report.per_query[q][m] for q in queries]) for m in ("ndcg@10", "recall@100")}


def main(argv: list[str] | None = None) -> int:
    record = ResultsFile.start(__file__, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished run directory (teacher, index)")
    parser.add_argument("--name", required=True, help="names the results file: peers_<name>_*.json")
    parser.add_argument("--methods", default="ours,model2vec,pynife,st-distill,leaf")
    parser.add_argument("--students", type=Path, help="a YAML list of extra students of ours to race")
    parser.add_argument("--shipped", help="our student whose paired difference every row gets (default: first)")
    parser.add_argument("--final", action="store_true", help="score the test queries, once")
    parser.add_argument("--rescore", action="store_true", help="score test again on the same commit (recorded)")
    args = parser.parse_args(argv)

    import yaml

    run = RunDir(args.run)
    race = Race.of(run)
    extra = yaml.safe_load(args.students.read_text()) if args.students else []
    teacher = teacher_row(race)
    rows = [
        (m, label, trained_variant(race, m, label, hp))
        for m, label, hp in variants(race, args.methods.split(","), extra)
    ]
    # choices on one half of validation, figures on the other: no row is scored on the queries it was chosen on
    every = {"teacher": per_query(race, race.cache / "teacher", "validation")}
    for method, label, _ in rows:
        every[(method, label)] = per_query(race, race.cache / method / slug(label), "validation")
    queries = list(race.validation)
    choose, report = (np.array([queries.index(q) for q in half]) for half in halves(queries))
    chosen = choose_rows(rows, {k: {m: v[choose] for m, v in pq.items()} for k, pq in every.items()})
    validation = {k: {m: v[report] for m, v in pq.items()} for k, pq in every.items()}
    v_teacher = validation["teacher"]["ndcg@10"].mean()
    shipped = ("ours", args.shipped or run.config.students[0].name)
    v_boot = PairedBootstrap.draw(len(report), seed=0)
    title = f"validation, the {len(report)} queries no choice was made on; teacher NDCG@10 {v_teacher:.4f}"
    table = Table(title=title)
    for column in ("method", "variant", "NDCG@10", "kept %", "p50 ms", "train s", "row"):
        table.add_column(column)
    figures_v = {}
    for method, label, meta in rows:
        ndcg = validation[(method, label)]["ndcg@10"].mean()
        role = ", ".join(r for r, key in chosen.items() if key == (method, label))
        table.add_row(
            method,
            label,
            f"{ndcg:.4f}",
            f"{100 * ndcg / v_teacher:.1f}",
            f"{meta['p50_ms']:.3f}",
            f"{meta['train_seconds']:.0f}",
            role,
        )
        figures_v[f"{method} / {label}"] = {
            "ndcg@10": ndcg,
            "recall@100": validation[(method, label)]["recall@100"].mean(),
            "recovery_%": 100 * ndcg / v_teacher,
            **paired_difference(validation[(method, label)], validation.get(shipped), v_boot),
            **meta,
        }
    console.print(table)
    splits = {"validation (choices)": len(choose), "validation (figures)": len(report)}
    base = {
        "run": str(args.run),
        "teacher": teacher,
        "teacher_validation_ndcg@10": v_teacher,
        "pool": len(race.texts),
        "chosen_on_validation": {k: " / ".join(v) for k, v in chosen.items()},
    }
    if not args.final:
        path = record.save(
            ROOT / "benchmarks" / "results" / f"peers_{args.name}_validation.json",
            {**base, "variants": figures_v},
            splits,
        )
        console.print(f"saved {path}")
        return 0
    path = ROOT / "benchmarks" / "results" / f"peers_{args.name}.json"
    rescored = refuse_second_final(path, args.rescore)
    figures = final_rows(race, chosen, rows, shipped)
    record.extra["rescored"] = rescored
    splits["test"] = len(race.test)
    record.save(path, {**base, "shipped": " / ".join(shipped), "rows": figures}, splits)
    print_final(figures, console)
    console.print(f"saved {path}")
    return 0


def paired_difference(own: dict, shipped: dict | None, bootstrap: PairedBootstrap) -> dict:
    """NDCG@10 minus the shipped student's, query by query, with its paired-bootstrap interval."""
    if shipped is None:
        return {}
    diff = own["ndcg@10"] - shipped["ndcg@10"]
    return {"ndcg_difference_to_shipped": float(diff.mean()), "ndcg_difference_ci": bootstrap.mean(diff).bounds}


def choose_rows(rows, validation) -> dict[str, tuple[str, str]]:
    """Each method's rows for the test table: our students as they are; each peer's default and its tuned
    row (the best validation NDCG@10 over its default and grid)."""
    chosen = {}
    for method, label, _ in rows:
        if method == "ours":
            chosen[f"ours: {label}"] = (method, label)
    for method in dict.fromkeys(m for m, _, _ in rows if m != "ours"):
        labels = [label for m, label, _ in rows if m == method]
        chosen[f"{method}: published defaults"] = (method, "default")
        best = max(labels, key=lambda label: validation[(method, label)]["ndcg@10"].mean())
        chosen[f"{method}: tuned on validation"] = (method, best)
    return chosen


def final_rows(race: Race, chosen, rows, shipped) -> dict[str, dict]:
    """Test figures of the chosen rows, each scored once, with paired-bootstrap intervals."""
    metas = {(m, label): meta for m, label, meta in rows}
    teacher = per_query(race, race.cache / "teacher", "test")
    ours = per_query(race, race.cache / shipped[0] / slug(shipped[1]), "test")
    teacher_meta = json.loads((race.cache / "teacher" / "meta.json").read_text())
    bootstrap = PairedBootstrap.draw(len(race.test), seed=0)
    out = {}
    for name, key in chosen.items():
        own = per_query(race, race.cache / key[0] / slug(key[1]), "test")
        meta = metas[key]
        out[name] = {
            "variant": key[1],
            **{m: float(own[m].mean()) for m in own},
            "ndcg@10_ci": bootstrap.mean(own["ndcg@10"]).bounds,
            "recall@100_ci": bootstrap.mean(own["recall@100"]).bounds,
            "ndcg_recovery_%": bootstrap.recovery(own["ndcg@10"], teacher["ndcg@10"]).mean,
            "ndcg_recovery_ci_%": bootstrap.recovery(own["ndcg@10"], teacher["ndcg@10"]).bounds,
            "recall_recovery_%": bootstrap.recovery(own["recall@100"], teacher["recall@100"]).mean,
            "recall_recovery_ci_%": bootstrap.recovery(own["recall@100"], teacher["recall@100"]).bounds,
            "ndcg_difference_to_shipped": float((own["ndcg@10"] - ours["ndcg@10"]).mean()),
            "ndcg_difference_to_shipped_ci": bootstrap.mean(own["ndcg@10"] - ours["ndcg@10"]).bounds,
            "p50_ms": meta["p50_ms"],
            "speedup_p50": teacher_meta["p50_ms"] / meta["p50_ms"],
            "runtime": meta["runtime"],
            "train_seconds": meta["train_seconds"],
            "size_mb": meta["size_mb"],
        }
    out["teacher"] = {
        "ndcg@10": float(teacher["ndcg@10"].mean()),
        "recall@100": float(teacher["recall@100"].mean()),
        "p50_ms": teacher_meta["p50_ms"],
        "runtime": teacher_meta["runtime"],
    }
    return out


def print_final(figures: dict, console: Console) -> None:
    table = Table(title="test")
    for column in (
        "row",
        "NDCG@10",
        "kept % [CI]",
        "R@100 kept %",
        "diff to shipped [CI]",
        "p50 ms",
        "x",
        "train s",
        "MB",
    ):
        table.add_column(column)
    for name, f in figures.items():
        if name == "teacher":
            continue
        lo, hi = f["ndcg_recovery_ci_%"]
        dlo, dhi = f["ndcg_difference_to_shipped_ci"]
        table.add_row(
            name,
            f"{f['ndcg@10']:.4f}",
            f"{f['ndcg_recovery_%']:.1f} [{lo:.1f}, {hi:.1f}]",
            f"{f['recall_recovery_%']:.1f}",
            f"{f['ndcg_difference_to_shipped']:+.4f} [{dlo:+.4f}, {dhi:+.4f}]",
            f"{f['p50_ms']:.3f}",
            f"{f['speedup_p50']:.0f}",
            f"{f['train_seconds']:.0f}",
            f"{f['size_mb']}",
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
