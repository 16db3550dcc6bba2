"""Which engine encodes the catalog: PyTorch on a GPU, the teacher exported to ONNX, or PyTorch on the CPU.

Catalog encoding is the longest step of the recipe on a CPU. The teacher's float32 ONNX graph, run by
onnxruntime, gives the same embeddings as PyTorch (the export is kept only when it agrees to within 1e-4 on
sample texts) and is faster on this machine's CPU for a small teacher: 1.13-1.17x for the fine-tuned MiniLM
teacher on Home Depot titles, with identical NDCG; for all-mpnet-base-v2 it is as fast as PyTorch (0.98x)
(``benchmarks/catalog_encoding.py``). int8 is faster still but moves the embeddings (MiniLM: min cosine 0.984;
all-mpnet-base-v2's int8 copy is noise, mean cosine 0.003), so it is not a default. bf16 through torch was 6x
*slower* here: this machine's CPU is documented with AVX-512 BF16, but the virtual machine exposes only AVX2
(``/proc/cpuinfo``; torch reports ``AVX2``, FAISS dispatches AVX2), so bf16 is emulated.

``auto`` (the default) encodes on the GPU when there is one (PyTorch, float32, batches of
:data:`GPU_BATCH_SIZE`); on a CPU it uses ONNX for :data:`ONNX_MIN_TEXTS` texts or more (fewer are encoded in
about the time an export takes: the demo's catalog) when the ``onnx`` extra is installed and the teacher exports
(a Transformer, Pooling that keeps the prompt's tokens, then Dense/Normalize); anything else encodes with
PyTorch on the CPU as before. ``torch`` is PyTorch (on the GPU when there is one), ``onnx`` insists on ONNX. The
export is made once per teacher (keyed by its weights) into the model cache; a teacher that cannot be exported
is remembered, so it is not retried.

sentence-transformers has its own ONNX backend (``SentenceTransformer(..., backend="onnx")``), but it needs
``optimum-onnx``, which does not install beside transformers 5 (pip: ResolutionImpossible), hence this path
through the project's own exporter.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Transformer

from harnesslm import extras
from harnesslm.atomic import write_text
from harnesslm.models.fingerprint import model_fingerprint
from harnesslm.models.prompts import Role, encode_as, prompt_of
from harnesslm.progress import progress as progress_lines

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx"]
Encoder = Callable[[list[str]], np.ndarray]
FAILED = ".export-failed"
"""Beside an export folder's name: why this teacher could not be exported (so it is not tried again)."""
ONNX_MIN_TEXTS = 10_000
"""``auto`` exports to ONNX only for at least this many texts: exporting and checking takes 3.5 s for MiniLM and
10 s for all-mpnet-base-v2 here; on 10,000 MiniLM titles (~68 s in PyTorch) a 1.15x speed-up saves ~9 s, more
than the export costs, and on fewer it saves less."""
GPU_BATCH_SIZE = 512
"""Catalog texts per batch on a GPU: short product titles leave a large GPU mostly idle at the CPU's 64."""


@dataclass(frozen=True)
class Engine:
    """What encodes a catalog instead of the model's own PyTorch CPU path: ``encode(texts) -> embeddings``
    (float32, L2-normalised, the model's document embeddings), in batches of ``batch_size`` when it wants its
    own."""

    name: str
    encode: Encoder
    batch_size: int | None = None


def accelerator() -> str | None:
    """The GPU to encode on (``cuda``), or None on a machine without one."""
    return "cuda" if torch.cuda.is_available() else None


def device_engine(
    model: SentenceTransformer, device: str, role: Role = "document", dtype: torch.dtype = torch.float32
) -> Engine:
    """``model`` (a copy, so the caller's stays where it is) encoding on ``device`` with weights in ``dtype``
    (embeddings come back as float32 either way)."""
    moved = copy.deepcopy(model).to(device=device, dtype=dtype)

    def encode(texts: list[str]) -> np.ndarray:
        embeddings = encode_as(
            moved, texts, role, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=True
        )
        return np.asarray(embeddings, dtype=np.float32)

    return Engine(device, encode, GPU_BATCH_SIZE)


def onnx_folder(model: SentenceTransformer, root: Path) -> Path:
    """Where ``model``'s float32 export lives: keyed by its weights and sequence length."""
    return Path(root) / f"{model_fingerprint(model)}-{model.max_seq_length}"


def onnx_encoder(model: SentenceTransformer, root: Path, role: Role = "document") -> Encoder | str:
    """``texts -> embeddings`` through ``model``'s ONNX export (made now if missing), or why there is none."""
    if not extras.available("onnx"):
        return "the onnx extra is not installed"
    if model.device.type != "cpu":
        return f"the model is on {model.device} (ONNX runs here on the CPU)"
    modules = list(model)
    if not isinstance(modules[0], Transformer):  # a static table is a look-up: nothing for ONNX to speed up
        return f"its first module is a {type(modules[0]).__name__}, not a Transformer"
    if len(modules) > 1 and not getattr(modules[1], "include_prompt", True):
        return "its pooling leaves the prompt's tokens out (the export pools every token)"
    from harnesslm.onnx.exporter import export_onnx
    from harnesslm.onnx.format import ONNX_META
    from harnesslm.onnx.runtime import OnnxQueryEncoder

    folder = onnx_folder(model, root)
    failed = folder.with_name(folder.name + FAILED)
    if failed.exists():
        return failed.read_text(encoding="utf-8")
    if not (folder / ONNX_META).exists():
        try:
            export_onnx(model, folder, meta={"source": "teacher"}, quantize=False)
        except Exception as error:  # any exporter failure means PyTorch encodes, as it always did
            reason = f"the export failed: {type(error).__name__}: {str(error)[:300]}"
            write_text(failed, reason)
            return reason
    session = OnnxQueryEncoder.load(folder, threads=torch.get_num_threads())
    prompt = prompt_of(model, role)

    def encode(texts: list[str]) -> np.ndarray:
        embeddings = session.encode([prompt + t for t in texts], batch_size=len(texts))
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        return embeddings / np.maximum(norms, 1e-12)

    return encode


def choose_encoder(
    model: SentenceTransformer,
    backend: Backend,
    root: Path,
    role: Role = "document",
    device: str | None = None,
    texts: int | None = None,
) -> Engine | None:
    """What encodes ``texts`` texts of ``model`` for ``backend`` (see the module docstring); None is PyTorch on
    the CPU.

    ``device`` is the GPU (default: :func:`accelerator`). ``onnx`` that cannot be had is an error; ``auto``
    falls back to PyTorch and logs why, and keeps PyTorch for fewer than :data:`ONNX_MIN_TEXTS` texts, which it
    encodes in about the time an export takes.
    """
    device = device or accelerator()
    if backend != "onnx" and device is not None:
        return device_engine(model, device, role)
    if backend == "torch" or (backend == "auto" and texts is not None and texts < ONNX_MIN_TEXTS):
        return None
    found = onnx_encoder(model, root, role)
    if isinstance(found, str):
        if backend == "onnx":
            raise RuntimeError(f"encoding.backend is onnx, but {found}")
        logger.info("encoding with PyTorch: %s", found)
        return None
    return Engine("onnx", found)


def encode_in_batches(
    engine: Engine, texts: Sequence[str], batch_size: int = 64, progress: bool = True, label: str = "encoding"
) -> np.ndarray:
    """``engine`` over ``texts`` in batches of similar length (little padding), with a progress bar."""
    texts = list(texts)
    batch_size = engine.batch_size or batch_size
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    with progress_lines(f"{label} ({engine.name})", len(texts), progress) as advance:
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            embeddings = engine.encode([texts[i] for i in rows])
            if out is None:
                out = np.empty((len(texts), embeddings.shape[1]), dtype=np.float32)
            out[rows] = embeddings
            advance(len(rows))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
