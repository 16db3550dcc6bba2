"""Run an exported student query encoder (``harness export``) with onnxruntime and the saved tokenizer.

No torch or sentence-transformers at query time: the folder's ``tokenizer.json`` is tokenised exactly as the
student's own module does (special tokens and truncation to ``max_seq_length`` for a transformer; no special
tokens for a static table), the batch is padded, and the graph returns L2-normalised embeddings in the
teacher's space, ready for :class:`harnesslm.serving.searcher.Searcher`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from harnesslm.onnx.format import ONNX_META, load_tokenizer, tokenize


class OnnxQueryEncoder:
    """An exported query encoder: ``encode(queries)`` -> float32 ``[n, dim]`` L2-normalised embeddings.

    ``meta`` is the folder's ``harness_onnx.json``; ``teacher_space`` the fingerprint of the teacher whose
    index these embeddings search (check it with ``ItemIndex.check_space``).
    """

    def __init__(self, session: ort.InferenceSession, tokenizer: Tokenizer, meta: dict, path: Path) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path

    @classmethod
    def load(
        cls, folder: Path, quantized: bool = False, threads: int | None = None, spin: bool = True
    ) -> OnnxQueryEncoder:
        """Open ``folder``'s float32 graph (or its int8 copy with ``quantized``) on the CPU.

        ``threads`` sets onnxruntime's intra-op threads (default: onnxruntime's own choice). ``spin=False``
        stops its idle worker threads from spinning between calls: by default they busy-wait for the next
        run, which is right for a benchmark loop and wrong in a service, where the spinning takes the core
        the event loop needs to parse the next request (why ONNX was slower than PyTorch inside the service).
        """
        folder = Path(folder)
        meta_path = folder / ONNX_META
        if not meta_path.exists():
            raise FileNotFoundError(f"no exported encoder in {folder} (no {ONNX_META}): run `harness export` first")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        name = meta["files"]["int8" if quantized else "fp32"]
        if name is None or not (folder / name).exists():
            kind = "int8" if quantized else "float32"
            raise FileNotFoundError(f"{folder} has no {kind} model: export it with quantization on")
        options = ort.SessionOptions()
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
        return cls(session, load_tokenizer(folder, meta), meta, folder / name)

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def teacher_space(self) -> str | None:
        return self.meta.get("teacher_space") or self.meta.get("student", {}).get("teacher_space")

    @property
    def quantized(self) -> bool:
        return self.path.name == self.meta["files"].get("int8")

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        return tokenize(self.tokenizer, self.meta, texts)

    def encode(self, queries: list[str], batch_size: int = 256) -> np.ndarray:
        """Embeddings of ``queries`` in their order; batches are formed by length so little is padded."""
        queries = list(queries)
        out = np.empty((len(queries), self.dim), dtype=np.float32)
        order = np.argsort([-len(q) for q in queries], kind="stable")
        for start in range(0, len(queries), max(1, batch_size)):
            rows = order[start : start + batch_size]
            (embeddings,) = self.session.run(["embedding"], self.tokenize([queries[i] for i in rows]))
            out[rows] = embeddings
        return out

    def __repr__(self) -> str:
        return f"OnnxQueryEncoder({str(self.path)!r}, dim={self.dim}, kind={self.meta.get('kind')!r})"
