"""Synthetic queries: cleaning and few-shot prompts by hand; one real generation when SmolLM2 is installed."""

from __future__ import annotations

import pytest

from harnesslm.pool.synthetic_queries import (
    clean_queries,
    echoes_title,
    few_shot_prompt,
    locate_smollm2,
    select_examples,
    write_queries,
)

TITLE = "Simpson Strong-Tie 12-Gauge Angle"
EXAMPLES = [
    ("angle bracket", TITLE),
    ("l bracket", TITLE),
    ("simpson strong tie 12 gauge angle", TITLE),  # echoes its title: never shown
    ("metal corner brace", TITLE),
    ("rain shower head", "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome"),
    ("shower faucet", "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome"),
    ("microwave", "Whirlpool 1.9 cu. ft. Over the Range Convection Microwave"),
]


def test_clean_queries_normalises_and_splits() -> None:
    raw = '1. "Angle Bracket"; 2) L-Bracket!\n- metal corner brace, Query 4: Joist Hanger.'
    assert clean_queries(raw, TITLE) == ["angle bracket", "l-bracket", "metal corner brace", "joist hanger"]


def test_clean_queries_drops_empty_long_duplicates_and_echoes() -> None:
    raw = "; ;  ,angle bracket; ANGLE BRACKET!; simpson strong-tie 12-gauge angle; strong tie angle 12 gauge; " + (
        "one two three four five six seven eight nine ten eleven"
    )
    assert clean_queries(raw, TITLE) == ["angle bracket"]


def test_echo_rule() -> None:
    long_title = "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome (Valve Not Included)"
    assert echoes_title("Simpson Strong-Tie 12-Gauge Angle", TITLE)  # the title itself
    assert echoes_title("strong tie 12 gauge angle", TITLE)  # >= 80% of the title's words
    assert echoes_title("delta vero 1 handle shower only faucet", long_title)  # > 6 words, all from the title
    assert not echoes_title("delta shower faucet", long_title)
    assert not echoes_title("simpson angle", TITLE)  # 2 of 5 words


def test_select_examples_is_deterministic_and_prefers_relevant_lists() -> None:
    shots = select_examples(EXAMPLES, k=2)
    assert shots == select_examples(list(reversed(EXAMPLES)), k=2)
    assert shots[0] == (TITLE, ["angle bracket", "l bracket", "metal corner brace"])
    assert shots[1][0].startswith("Delta")
    relevance = [3.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert select_examples(EXAMPLES, k=1, relevance=relevance)[0][1] == [
        "angle bracket",
        "metal corner brace",
        "l bracket",
    ]


@pytest.mark.parametrize("style", ["chat", "completion"])
def test_few_shot_prompt(style: str) -> None:
    prompt = few_shot_prompt(EXAMPLES, "  Husky 3/8 in.   Drive Socket Set ", style=style)
    assert "angle bracket; l bracket; metal corner brace" in prompt
    assert "simpson strong tie 12 gauge angle" not in prompt
    assert prompt.index(TITLE) < prompt.index("Delta") < prompt.index("Whirlpool")
    if style == "chat":
        assert prompt.startswith("<|im_start|>system\n")
        assert prompt.endswith(
            "<|im_start|>user\nProduct: Husky 3/8 in. Drive Socket Set<|im_end|>\n<|im_start|>assistant\n"
        )
    else:
        assert prompt.endswith("Product: Husky 3/8 in. Drive Socket Set\nQueries:")


def test_generates_with_llama_cpp() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make install-llm)")
    try:
        locate_smollm2()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    titles = ["DEWALT 20-Volt Lithium-Ion Cordless Drill", "Glacier Bay 2-piece Round Toilet in White"]
    first = write_queries(titles, EXAMPLES, per_item=2, backend="llama_cpp", progress=False, n_threads=1)
    assert len(first) == 2
    assert any(first)
    for title, queries in zip(titles, first, strict=True):
        assert len(queries) <= 2
        assert queries == clean_queries("; ".join(queries), title)
    assert write_queries(titles, EXAMPLES, per_item=2, backend="llama_cpp", progress=False, n_threads=1) == first
