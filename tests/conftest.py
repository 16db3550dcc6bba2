"""Shared fixtures: a tiny randomly initialised BERT teacher built offline, and a small demo shop on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "homedepot"


def build_tiny_bert(folder: Path, texts: list[str], hidden: int = 32, layers: int = 3, seed: int = 0) -> Path:
    """A sentence-transformers folder: WordPiece tokenizer trained on ``texts`` + random BERT + mean pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    word_piece = BertWordPieceTokenizer(lowercase=True)
    word_piece.train_from_iterator(texts, vocab_size=1500, min_frequency=1, show_progress=False)
    tokenizer = BertTokenizerFast(tokenizer_object=word_piece._tokenizer, do_lower_case=True)
    tokenizer.add_special_tokens(
        {
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "unk_token": "[UNK]",
            "mask_token": "[MASK]",
        }
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    hf_dir = folder / "hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=48)
    model = SentenceTransformer(modules=[transformer, Pooling(hidden, pooling_mode="mean"), Normalize()], device="cpu")
    out = folder / "model"
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_bert_builder():
    """:func:`build_tiny_bert`, for tests in folders with a conftest of their own (``from conftest import``
    would find theirs)."""
    return build_tiny_bert


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small demo shop written as CSV files (Home Depot column names)."""
    from harnesslm.demo.shop import write_demo_shop

    return write_demo_shop(tmp_path_factory.mktemp("demo"), n_products=300, n_queries=150, n_unlabeled=100)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random sentence-transformers model whose vocabulary covers the demo shop."""
    from harnesslm.demo.shop import make_demo_shop

    shop = make_demo_shop(n_products=300, n_queries=150, n_unlabeled=100)
    texts = [
        *shop.catalog["product_title"],
        *shop.judgments["search_term"],
        *shop.unlabeled_queries["search_term"],
    ]
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-teacher"), texts)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory):
    """The address (``http://127.0.0.1:PORT``) of a real Milvus standalone server, started for the session.

    The server binary comes from the ``milvus`` package on PyPI (2.3.5, the newest release that ships one; a
    dev dependency, installed by CI), which runs ``milvus run standalone`` with an embedded etcd and local
    storage under a temporary folder. The tests talk to it through pymilvus's network client, as to any
    Milvus standalone or cluster. Skips where that package has no server for this platform (it ships
    Linux x86-64 and macOS binaries).
    """
    try:
        from milvus import MilvusServer
    except ImportError:
        pytest.skip("no Milvus server binary: pip install 'milvus==2.3.5' (Linux x86-64 / macOS)")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = MilvusServer()
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    server.listen_port = port
    server.start()  # waits for /healthz (raises when the server exits or does not answer in 180 s)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The bundled SmolLM2-135M-Instruct GGUF file (``make install-llm``); skips where it is not installed."""
    from harnesslm.pool.synthetic_queries import locate_smollm2

    try:
        return locate_smollm2()
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test's embedding/model cache inside its tmp folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESSLM_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def threads_restored():
    """Undo what a test does to torch's, FAISS's and numpy's BLAS threads (the service pins them for the
    process's life, as it should when serving), so no later test runs pinned to one thread."""
    import faiss
    from threadpoolctl import threadpool_info, threadpool_limits

    saved = (torch.get_num_threads(), faiss.omp_get_max_threads(), threadpool_info())
    yield
    torch.set_num_threads(saved[0])
    faiss.omp_set_num_threads(saved[1])
    threadpool_limits(limits=saved[2])


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Name every test that did not run, and why, at the end of the run (CI and `make test` alike): a skip is a
    test that did not run, not a pass."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.section(f"{len(skipped)} tests did not run")
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        terminalreporter.line(f"{report.nodeid}: {reason.removeprefix('Skipped: ')}")
