"""Export a student query encoder to ONNX (float32, plus a dynamically int8-quantized copy) for serving.

The exported graph takes ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``, both axes dynamic)
and returns ``embedding`` (float32, ``[batch, dim]``): the *whole* query encoder, pooling, projection to the
teacher's dimension and L2 normalisation included, so a service only tokenises, runs the graph and searches
the teacher's index. The folder also holds the tokenizer (``tokenizer.json``) and ``harness_onnx.json``
(kind, dimension, tokenisation settings, and the student's own metadata with its ``teacher_space``), so
:class:`harnesslm.onnx.runtime.OnnxQueryEncoder` needs nothing else.

The export is checked before it is kept: the float32 graph, run through the saved tokenizer, must give the
PyTorch student's own embeddings to within :data:`FP32_TOLERANCE`, or nothing is written.
"""

from __future__ import annotations

import inspect
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import (
    Dense,
    Normalize,
    Pooling,
    StaticEmbedding,
    Transformer,
)
from tokenizers import Tokenizer
from torch.nn import functional

from harnesslm.atomic import atomic_directory
from harnesslm.onnx.format import ONNX_META, TOKENIZER_FILE, load_tokenizer, tokenize
from harnesslm.onnx.runtime import OnnxQueryEncoder

FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
FP32_TOLERANCE = 1e-4
INT8_MIN_COSINE = 0.9
"""The int8 copy is kept only when every sample's embedding keeps at least this cosine to float32's. Dynamic
quantization usually keeps 0.98-0.999; all-mpnet-base-v2's came out as noise (mean cosine 0.003) with full-range
weights and at 0.877 with 7-bit ones, and an exporter that kept it would let a service answer with random
items."""
POOLING_MODES = ("mean", "cls", "max")

SAMPLE_TEXTS = (
    "romex 12 gauge wire",
    "Satin Nickel door knob",
    "drill",
    "1/2 in. x 10 ft. copper pipe type M",
    "weed eater string trimmer gas powered 25cc straight shaft with extra spool and a very long name "
    "that goes on and on past any sensible query length to check truncation",
    "semi-gloss white paint 1 gal. Behr Premium Plus Ultra interior exterior",
    "café naïve — ünïcödé & punctuation!!",
    "x",
)


class OnnxExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch student (or the student cannot be exported)."""


@dataclass
class ExportInfo:
    """What :func:`export_onnx` wrote, and how closely the exported graphs agree with the student."""

    folder: Path
    kind: str
    dim: int
    max_seq_length: int | None
    files_mb: dict[str, float]
    fp32_max_abs_diff: float
    int8_mean_cosine: float | None = None
    int8_min_cosine: float | None = None
    meta: dict = field(default_factory=dict)
    int8_rejected: str | None = None

    def to_dict(self) -> dict:
        return asdict(self) | {"folder": str(self.folder)}


# graphs ----------------------------------------------------------------------------------------------------
def _apply_head(head: torch.nn.ModuleList, pooled: torch.Tensor) -> torch.Tensor:
    """The student's post-pooling modules (Dense projection, Normalize), then a final L2 normalisation."""
    features = {"sentence_embedding": pooled}
    for module in head:
        features = module(features)
    return functional.normalize(features["sentence_embedding"], p=2, dim=-1)


class _StaticGraph(torch.nn.Module):
    """What ``StaticEmbedding``'s ``EmbeddingBag`` computes, on a padded batch: the mean (or sum) of the
    table rows of each query's tokens, padding excluded; then the head. The table becomes a ``Gather``."""

    def __init__(self, static: StaticEmbedding, head: list[torch.nn.Module]) -> None:
        super().__init__()
        bag = static.embedding
        if bag.mode not in ("mean", "sum") or bag.max_norm is not None:
            raise OnnxExportError(f"cannot export an EmbeddingBag with mode={bag.mode!r}, max_norm={bag.max_norm}")
        self.table = bag.weight
        self.mode = bag.mode
        self.padding_idx = bag.padding_idx
        self.head = torch.nn.ModuleList(head)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        rows = functional.embedding(input_ids, self.table)
        keep = attention_mask if self.padding_idx is None else attention_mask * (input_ids != self.padding_idx)
        mask = keep.unsqueeze(-1).to(rows.dtype)
        pooled = (rows * mask).sum(dim=1)
        if self.mode == "mean":  # an empty query averages to zeros, as an empty bag does
            pooled = pooled / mask.sum(dim=1).clamp(min=1.0)
        return _apply_head(self.head, pooled)


class _TransformerGraph(torch.nn.Module):
    """The Hugging Face model's last hidden state, pooled as the student's ``Pooling`` says, then the head."""

    def __init__(self, transformer: Transformer, pooling: Pooling, head: list[torch.nn.Module]) -> None:
        super().__init__()
        self.model = transformer.auto_model
        self.mode = pooling.pooling_mode
        self.token_types = "token_type_ids" in (getattr(transformer.tokenizer, "model_input_names", None) or []) and (
            "token_type_ids" in inspect.signature(self.model.forward).parameters
        )
        self.head = torch.nn.ModuleList(head)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types:  # one segment: all zeros, as the tokenizer gives for a single text
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
        hidden = self.model(**inputs, return_dict=True).last_hidden_state
        if self.mode == "cls":  # the first attended position, as Pooling does (left padding included)
            first = attention_mask.to(torch.int32).argmax(dim=1)
            pooled = hidden[torch.arange(hidden.shape[0]), first]
        elif self.mode == "max":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return _apply_head(self.head, pooled)


def _head_of(modules: Sequence[torch.nn.Module]) -> list[torch.nn.Module]:
    for module in modules:
        if not isinstance(module, Dense | Normalize):
            raise OnnxExportError(f"cannot export a {type(module).__name__} after pooling (Dense/Normalize only)")
    return list(modules)


def _graph_and_settings(student: SentenceTransformer) -> tuple[torch.nn.Module, dict]:
    """The export wrapper for ``student`` and the tokenisation settings the encoder must reproduce."""
    modules = list(student)
    first = modules[0]
    if isinstance(first, StaticEmbedding):
        truncation = first.tokenizer.truncation
        settings = {
            "kind": "static",
            # StaticEmbedding tokenises with add_special_tokens=False and keeps the tokenizer's own truncation
            "add_special_tokens": False,
            "max_seq_length": int(truncation["max_length"]) if truncation else None,
            "pad_id": 0,  # any valid row: padded positions are masked out of the mean
            "pooling": first.embedding.mode,
        }
        return _StaticGraph(first, _head_of(modules[1:])), settings
    if isinstance(first, Transformer):
        text = first.modality_config.get("text", {})
        if text.get("method") != "forward" or text.get("method_output_name") != "last_hidden_state":
            raise OnnxExportError(f"cannot export a Transformer whose text output is {text}")
        if len(modules) < 2 or not isinstance(modules[1], Pooling):
            raise OnnxExportError("a transformer student needs a Pooling module right after the Transformer")
        pooling = modules[1]
        if pooling.pooling_mode not in POOLING_MODES:
            raise OnnxExportError(f"cannot export pooling mode {pooling.pooling_mode!r}; supported: {POOLING_MODES}")
        tokenizer = first.tokenizer
        settings = {
            "kind": "transformer",
            "add_special_tokens": True,  # lower-casing (do_lower_case) lives in the saved tokenizer's normalizer
            "max_seq_length": int(student.max_seq_length) if student.max_seq_length else None,
            "pad_id": int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0,
            "pooling": pooling.pooling_mode,
        }
        return _TransformerGraph(first, pooling, _head_of(modules[2:])), settings
    raise OnnxExportError(f"cannot export a model whose first module is a {type(first).__name__}")


def _save_tokenizer(student: SentenceTransformer, folder: Path) -> None:
    first = student[0]
    if isinstance(first, StaticEmbedding):
        first.tokenizer.save(str(folder / TOKENIZER_FILE))
    else:
        student.tokenizer.save_pretrained(str(folder))
    if not (folder / TOKENIZER_FILE).exists():
        raise OnnxExportError("the student's tokenizer has no tokenizer.json (a fast tokenizer is needed)")


# export ----------------------------------------------------------------------------------------------------
def export_onnx(
    student: SentenceTransformer,
    folder: Path,
    meta: dict | None = None,
    quantize: bool = True,
    opset: int = 17,
    samples: Sequence[str] = SAMPLE_TEXTS,
) -> ExportInfo:
    """Write ``model.onnx`` (+ ``model-int8.onnx``), the tokenizer and ``harness_onnx.json`` into ``folder``.

    ``meta`` is the student's ``harness_student.json`` content; it is kept (with its ``teacher_space``) so a
    service can refuse an index from another teacher. The folder is written atomically and only kept when
    the float32 graph reproduces ``student.encode`` on ``samples`` (raises :class:`OnnxExportError`).
    """
    if student.device.type != "cpu":
        raise OnnxExportError(f"export a student on the CPU (this one is on {student.device})")
    meta = dict(meta or {})
    graph, settings = _graph_and_settings(student)
    dim = int(student.get_embedding_dimension() or 0)
    with atomic_directory(Path(folder)) as tmp:
        _save_tokenizer(student, tmp)
        info = {
            "format": 1,
            **settings,
            "dim": dim,
            "opset": opset,
            "files": {"fp32": FP32_FILE, "int8": INT8_FILE if quantize else None},
            "teacher_space": meta.get("teacher_space"),
            "student": meta,
        }
        (tmp / ONNX_META).write_text(json.dumps(info, indent=2), encoding="utf-8")
        example = _padded_example(load_tokenizer(tmp, info), info)
        _torch_export(graph, example, tmp / FP32_FILE, opset)
        if quantize:
            _quantize(tmp / FP32_FILE, tmp / INT8_FILE)

        reference = student.encode(
            list(samples), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        fp32 = OnnxQueryEncoder.load(tmp).encode(list(samples), batch_size=3)  # mixed lengths: padding inside
        diff = float(np.abs(fp32 - reference).max())
        if not diff < FP32_TOLERANCE:
            raise OnnxExportError(f"the ONNX graph disagrees with the PyTorch student: max |diff| = {diff:.2e}")
        mean_cos = min_cos = None
        rejected = None
        if quantize:
            cosines = row_cosines(OnnxQueryEncoder.load(tmp, quantized=True).encode(list(samples)), reference)
            mean_cos, min_cos = float(cosines.mean()), float(cosines.min())
            if min_cos < INT8_MIN_COSINE:  # a broken quantization is not kept: serving it would return noise
                rejected = f"int8 copy removed: min cosine to float32 {min_cos:.4f} < {INT8_MIN_COSINE}"
                (tmp / INT8_FILE).unlink()
                info["files"]["int8"] = None
        info["verification"] = {
            "samples": len(samples),
            "fp32_max_abs_diff": diff,
            "int8_mean_cosine": mean_cos,
            "int8_min_cosine": min_cos,
            **({"int8_rejected": rejected} if rejected else {}),
        }
        (tmp / ONNX_META).write_text(json.dumps(info, indent=2), encoding="utf-8")
        sizes = {p.name: round(p.stat().st_size / 2**20, 3) for p in sorted(tmp.iterdir()) if p.is_file()}
    return ExportInfo(
        folder=Path(folder),
        kind=settings["kind"],
        dim=dim,
        max_seq_length=settings["max_seq_length"],
        files_mb=sizes,
        fp32_max_abs_diff=diff,
        int8_mean_cosine=mean_cos,
        int8_min_cosine=min_cos,
        meta=meta,
        int8_rejected=rejected,
    )


def _padded_example(tokenizer: Tokenizer, info: dict) -> dict[str, np.ndarray]:
    """A traced batch with mixed lengths and one extra padded column, so padding is certainly present."""
    batch = tokenize(tokenizer, info, list(SAMPLE_TEXTS[:4]))
    n = len(batch["input_ids"])
    return {
        "input_ids": np.concatenate([batch["input_ids"], np.full((n, 1), info["pad_id"], np.int64)], axis=1),
        "attention_mask": np.concatenate([batch["attention_mask"], np.zeros((n, 1), np.int64)], axis=1),
    }


def _torch_export(graph: torch.nn.Module, example: dict[str, np.ndarray], path: Path, opset: int) -> None:
    """The TorchScript exporter (``dynamo=False``): it traces the Hugging Face models cleanly and keeps the
    graph plain (no functions), which ``quantize_dynamic`` handles. The example batch must contain padding,
    so the traced attention keeps its mask."""
    inputs = (torch.from_numpy(example["input_ids"]), torch.from_numpy(example["attention_mask"]))
    dynamic_axes = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "seq"},
        "embedding": {0: "batch"},
    }
    was_training = graph.training
    graph.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy-exporter deprecation notice and tracer warnings
            torch.onnx.export(
                graph,
                inputs,
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        graph.train(was_training)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization: weights quantized once here, activations quantized at run time.

    What ``quantize_dynamic`` quantizes in these graphs (checked on the exported models):

    * every ``MatMul`` with a constant weight -> ``MatMulInteger`` with int8 weights, one scale per output
      channel: the transformer's attention and feed-forward layers, and the projection (exported as ``Gemm``,
      which the quantizer first rewrites as ``MatMul`` + ``Add``). Per-channel scales matter: on a 2-layer
      all-MiniLM-L6-v2 student the mean cosine to float32 is 0.997 with them, 0.974 with one per tensor;
    * every ``Gather`` over a constant table: its registry maps ``Gather`` to ``GatherQuant``, which
      quantizes the table like an activation (uint8, one scale per tensor) and dequantizes after the
      look-up. That is the static student's whole embedding table (most of its size) and a transformer's
      word/position/token-type embeddings.

    Left in float32: LayerNorm, softmax, the attention's activation-by-activation products, pooling and the
    final normalisation.

    Weights are kept to 7 bits (``reduce_range``): on x86 CPUs without VNNI (this AVX2 VM, and many a serving
    fleet) onnxruntime multiplies uint8 activations by int8 weights with an instruction that saturates 16-bit
    sums, so full-range weights can overflow (onnxruntime's quantization docs; microsoft/onnxruntime#6004).
    Measured on 300 Home Depot titles: all-mpnet-base-v2's int8 copy went from noise (mean cosine to float32
    0.000, min -0.116) to 0.877 / 0.772 (still too lossy to keep; activation outliers are a likely cause, not
    checked), and all-MiniLM-L6-v2's stayed at 0.991 / 0.983.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_logging():  # it warns on the root logger that no pre-processing was run
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8, reduce_range=True)


@contextmanager
def _quiet_logging() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (1.0 where both rows are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    return np.where(both_zero, 1.0, dots / np.maximum(norms, 1e-12))
