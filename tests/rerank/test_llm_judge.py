"""The ProRBP-style LLM judge: behaviour neighbours from the log, progressive prompts, P(yes) from a local LLM."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harnesslm.rerank.llm_judge import STAGES, BehaviourLog, LLMJudge, _share, stage_prompts

TEXTS = {
    "d1": "DEWALT 20V MAX Cordless Drill Driver Kit",
    "d2": "Ryobi 18V ONE+ Cordless Drill",
    "h1": "Flexzilla 50 ft. Garden Hose",
    "b1": "Philips 60W LED Light Bulb (4-Pack)",
    "s1": "Husky Socket Set (40-Piece)",
}
LOG = pd.DataFrame(
    {
        "query": ["cordless drill", "cordless drill", "drill 20v", "drill 20v", "garden hose", "led bulb"],
        "item_id": ["d1", "s1", "d1", "h1", "h1", "b1"],
        "label": [3.0, 1.0, 2.67, 1.33, 3.0, 2.67],
    }
)


def test_the_log_finds_similar_queries_never_the_query_itself() -> None:
    log = BehaviourLog.from_judgments(LOG, TEXTS, relevant_at=2.33)
    assert log.by_query["cordless drill"] == ((TEXTS["d1"],), (TEXTS["s1"],))
    near = log.neighbours("cordless drill", 2)
    assert near and near[0].query == "drill 20v" and all(n.query != "cordless drill" for n in near)
    assert near[0].engaged == (TEXTS["d1"],) and near[0].skipped == (TEXTS["h1"],)
    assert log.neighbours("cordless drill", 0) == []
    assert BehaviourLog({}).neighbours("x", 3) == []


def test_each_stage_adds_behaviour_to_the_one_before() -> None:
    log = BehaviourLog.from_judgments(LOG, TEXTS, relevant_at=2.33)
    plain, engaged, both = stage_prompts("drill", TEXTS["d2"], log.neighbours("cordless drill", 1))
    assert plain.startswith("Query: drill") and TEXTS["d2"] in plain
    assert engaged.endswith(plain) and TEXTS["d1"] in engaged and TEXTS["h1"] not in engaged
    assert both.endswith(plain) and engaged.split("\n\n")[0] in both and TEXTS["h1"] in both
    assert stage_prompts("drill", TEXTS["d2"], []) == [plain] * 3, "no behaviour: every stage is the plain one"
    assert len(STAGES) == 3


def test_yes_share() -> None:
    assert _share([math.log(0.6)], [math.log(0.2)]) == pytest.approx(0.75)
    assert _share([math.log(0.1), math.log(0.1)], [math.log(0.2)]) == pytest.approx(0.5)
    assert _share([], []) == 0.5


@pytest.mark.parametrize("backend", ["transformers", "llama_cpp"])
def test_smollm2_judges_each_stage_and_their_mean(smollm2, backend: str) -> None:
    pytest.importorskip("gguf" if backend == "transformers" else "llama_cpp", reason="make install-llm")
    log = BehaviourLog.from_judgments(LOG, TEXTS, relevant_at=2.33)
    judge = LLMJudge(smollm2, log, backend=backend, neighbours=2, n_threads=2)
    queries = ["cordless drill", "cordless drill", "garden hose", "zzz qqq"]
    items = [TEXTS["d2"], TEXTS["b1"], TEXTS["h1"], TEXTS["d1"]]
    scores = judge.score(queries, items)
    assert scores.shape == (len(STAGES) + 1, 4)
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores[-1], scores[:-1].mean(axis=0))
    assert scores[0, 3] == scores[1, 3] == scores[2, 3], "a query with no neighbour gets the plain prompt thrice"
    assert not np.allclose(scores[0, :3], scores[1, :3]), "the behaviour in the prompt changes the answer"
    np.testing.assert_allclose(judge.score(queries, items), scores, atol=1e-6)
    with pytest.raises(ValueError, match="queries but"):
        judge.score(queries, items[:2])
