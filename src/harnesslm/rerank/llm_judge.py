"""An LLM relevance judge that reads the search log's behaviour (ProRBP): for a (query, item) pair, the judged
items of the K most similar logged queries go into its prompt, progressively, and the stages' answers are
averaged.

A small local language model judges a pair by the probability it gives "yes" against "no" as its next token.
Three prompts, each adding behaviour to the one before (ProRBP's progressive prompting):

1. the query and the item alone;
2. plus the items shoppers engaged with (judged relevant) for the K most similar logged queries;
3. plus the items judged not relevant for those queries.

The judge's score is the mean of the stages' P(yes). The similar queries come from BM25 over the log's queries
(bm25s; the query itself is never its own neighbour), so no encoder is needed beside the language model.

Any local LLM with a chat template serves: a llama.cpp GGUF file (``backend="llama_cpp"``, llama-cpp-python) or
a transformers model folder or GGUF file (``backend="transformers"``). The bundled SmolLM2-135M-Instruct runs in
the tests; it is far too small to judge well, and ``benchmarks/llm_judge.py`` measures how far.

Example::

    behaviour = BehaviourLog.from_judgments(train, item_texts, relevant_at=2.33)
    judge = LLMJudge(locate_smollm2(), behaviour, backend="transformers")
    scores = judge.score(["cordless drill"], ["DEWALT 20V MAX Cordless Drill Kit"])  # one row per stage, + mean
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from harnesslm import extras

Backend = Literal["llama_cpp", "transformers"]
STAGES = ("plain", "engaged", "engaged+skipped")
SYSTEM = (
    "You judge whether a product in an online shop is relevant to a shopper's search query. "
    "Answer with one word: yes or no."
)
QUESTION = "Query: {query}\nProduct: {item}\nIs this product relevant to the query? Answer yes or no."
MAX_ITEM_WORDS = 24
YES, NO = ("yes", "Yes", " yes", " Yes", "YES"), ("no", "No", " no", " No", "NO")


@dataclass(frozen=True)
class Neighbour:
    """A logged query like the judged one, with the items judged relevant (engaged) and not relevant for it."""

    query: str
    engaged: tuple[str, ...]
    skipped: tuple[str, ...]


class BehaviourLog:
    """The search log's judged pairs, searchable by query (BM25 over the logged queries)."""

    def __init__(self, by_query: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> None:
        from harnesslm.index.bm25 import BM25Retriever

        self.by_query = dict(by_query)
        queries = list(self.by_query)
        self.index = BM25Retriever.fit(queries, queries) if queries else None

    @classmethod
    def from_judgments(
        cls, judgments: pd.DataFrame, item_texts: Mapping[str, str], relevant_at: float, per_query: int = 3
    ) -> BehaviourLog:
        """From ``query, item_id, label`` rows: per query, up to ``per_query`` relevant and not relevant items
        (the highest and the lowest labels first)."""
        by_query: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for query, rows in judgments.sort_values("label", ascending=False).groupby("query", sort=False):
            texts = [_short(item_texts[i]) for i in rows["item_id"]]
            relevant = (rows["label"] >= relevant_at).to_numpy()
            engaged = tuple(t for t, r in zip(texts, relevant, strict=True) if r)[:per_query]
            skipped = tuple(t for t, r in zip(texts[::-1], relevant[::-1], strict=True) if not r)[:per_query]
            by_query[str(query)] = (engaged, skipped)
        return cls(by_query)

    def neighbours(self, query: str, k: int) -> list[Neighbour]:
        """The ``k`` logged queries most like ``query`` (BM25), never ``query`` itself."""
        if self.index is None or k < 1:
            return []
        hits = self.index.search([query], k + 1)[0]
        found = [q for q, _ in hits if q != query][:k]
        return [Neighbour(q, *self.by_query[q]) for q in found]


def stage_prompts(query: str, item: str, neighbours: Sequence[Neighbour]) -> list[str]:
    """The user message of each stage (see the module docstring)."""
    question = QUESTION.format(query=query, item=_short(item))
    engaged = [f'- "{n.query}": ' + "; ".join(n.engaged) for n in neighbours if n.engaged]
    skipped = [f'- "{n.query}": ' + "; ".join(n.skipped) for n in neighbours if n.skipped]
    second = (
        ["Shoppers who searched for similar queries chose these products:\n" + "\n".join(engaged)] if engaged else []
    )
    third = second + (
        ["For similar queries they passed over these products:\n" + "\n".join(skipped)] if skipped else []
    )
    return [question, "\n\n".join([*second, question]), "\n\n".join([*third, question])]


class _Judge(Protocol):
    def yes_probability(self, system: str, user: str) -> float: ...


class LLMJudge:
    """P(relevant) of (query, item) pairs from a local language model, with behaviour neighbours (ProRBP)."""

    def __init__(
        self,
        model: str | Path,
        behaviour: BehaviourLog | None = None,
        *,
        backend: Backend = "transformers",
        neighbours: int = 3,
        n_threads: int = 2,
        n_ctx: int = 2048,
    ) -> None:
        self.behaviour = behaviour
        self.k = neighbours if behaviour is not None else 0
        if backend == "transformers":
            self.backend: _Judge = _TransformersJudge(Path(model), n_threads)
        elif backend == "llama_cpp":
            self.backend = _LlamaCppJudge(Path(model), n_ctx, n_threads)
        else:
            raise ValueError(f"unknown backend {backend!r}: use 'llama_cpp' or 'transformers'")

    def score(self, queries: Sequence[str], items: Sequence[str], progress: bool = False) -> np.ndarray:
        """Shape ``(len(STAGES) + 1, n)``: each stage's P(yes), then their mean (the judge's score)."""
        from rich.progress import track

        if len(queries) != len(items):
            raise ValueError(f"{len(queries)} queries but {len(items)} items")
        out = np.zeros((len(STAGES) + 1, len(queries)), dtype=np.float64)
        neighbours: dict[str, list[Neighbour]] = {}
        pairs = list(zip(queries, items, strict=True))
        for column, (query, item) in enumerate(track(pairs, description="LLM judge", disable=not progress)):
            if query not in neighbours:
                neighbours[query] = self.behaviour.neighbours(query, self.k) if self.behaviour is not None else []
            prompts = stage_prompts(query, item, neighbours[query])
            seen: dict[str, float] = {}
            for stage, prompt in enumerate(prompts):  # a stage with no behaviour to add repeats the one before
                if prompt not in seen:
                    seen[prompt] = self.backend.yes_probability(SYSTEM, prompt)
                out[stage, column] = seen[prompt]
        out[-1] = out[:-1].mean(axis=0)
        return out


class _TransformersJudge:
    """Next-token probabilities from a transformers causal LM (a folder, a hub name, or a GGUF file)."""

    def __init__(self, model: Path, n_threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads)
        self.torch = torch
        kwargs: dict[str, Any] = {}
        source = str(model)
        if model.suffix == ".gguf":
            source, kwargs = str(model.parent), {"gguf_file": model.name}
        self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs).eval()
        self.yes = _first_ids(self.tokenizer, YES)
        self.no = _first_ids(self.tokenizer, NO) - self.yes

    def yes_probability(self, system: str, user: str) -> float:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with self.torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, -1].float()
        log_probs = self.torch.log_softmax(logits, dim=-1)
        return _share([float(log_probs[i]) for i in sorted(self.yes)], [float(log_probs[i]) for i in sorted(self.no)])


class _LlamaCppJudge:
    """Next-token probabilities from llama.cpp (the top log-probabilities of a one-token chat completion)."""

    TOP = 20

    def __init__(self, model: Path, n_ctx: int, n_threads: int) -> None:
        extras.require("llm", "the LLM judge with the llama_cpp backend (`make install-llm`)")
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=n_threads, logits_all=True, verbose=False)

    def yes_probability(self, system: str, user: str) -> float:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        out = self.llm.create_chat_completion(
            messages, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.TOP
        )
        found = out["choices"][0].get("logprobs") or {}
        if "content" in found:  # the chat shape: one entry per generated token, each with its top alternatives
            top = {entry["token"]: entry["logprob"] for entry in found["content"][0]["top_logprobs"]}
        else:  # the completion shape: a {token: logprob} mapping per generated token
            top = dict(found.get("top_logprobs", [{}])[0])
        return _share([v for t, v in top.items() if t in YES], [v for t, v in top.items() if t in NO])


def _share(yes: Sequence[float], no: Sequence[float]) -> float:
    """P(yes) / (P(yes) + P(no)) from log-probabilities; 0.5 when the model gives neither."""
    p_yes, p_no = sum(math.exp(v) for v in yes), sum(math.exp(v) for v in no)
    return p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.5


def _first_ids(tokenizer: Any, words: Sequence[str]) -> set[int]:
    """The first token id of each spelling of the answer word."""
    return {tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in words}


def _short(text: str) -> str:
    words = str(text).split()
    return " ".join(words[:MAX_ITEM_WORDS]) + (" ..." if len(words) > MAX_ITEM_WORDS else "")
