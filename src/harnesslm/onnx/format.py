"""The exported encoder folder's format, shared by export and runtime: file names, metadata and tokenisation.

Only ``tokenizers`` and numpy (core dependencies), so code that finds or describes an export imports this
without onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

ONNX_DIR = "onnx"
"""The folder an export is written to, inside the student folder it came from."""
ONNX_META = "harness_onnx.json"
TOKENIZER_FILE = "tokenizer.json"


def load_tokenizer(folder: Path, meta: dict) -> Tokenizer:
    """The saved tokenizer, truncating to ``max_seq_length`` and padding to the batch's longest query."""
    tokenizer = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
    if meta.get("max_seq_length"):
        tokenizer.enable_truncation(max_length=int(meta["max_seq_length"]))
    else:
        tokenizer.no_truncation()
    tokenizer.enable_padding(pad_id=int(meta.get("pad_id", 0)), direction="right")
    return tokenizer


def tokenize(tokenizer: Tokenizer, meta: dict, texts: list[str]) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64, ``[len(texts), seq]``; ``seq >= 1``)."""
    encodings = tokenizer.encode_batch(texts, add_special_tokens=bool(meta.get("add_special_tokens", True)))
    ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(texts), -1)
    if ids.shape[1] == 0:  # only empty queries (a static table with no tokens): one masked position
        ids = np.full((len(texts), 1), int(meta.get("pad_id", 0)), dtype=np.int64)
        mask = np.zeros((len(texts), 1), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask}
