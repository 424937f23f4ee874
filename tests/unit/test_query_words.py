"""A query is answered by its words, not by the asker's history (issue #21, item 3).

With the real text tower: a jazz fan asking for dinner gets cooking (zero-shot and with a fused
model, whatever that model thinks of the asker), and two askers with different histories get the
same matches for the same words, each in their own order. The rule itself: tests on
``service/queries.py`` with hand-made relevance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from socrec_online.events import Click, Event, Follow, ItemPublished, Like, Query
from socrec_online.service.engine import Engine
from socrec_online.service.queries import QueryRule, query_scores
from socrec_online.settings import Settings

T0 = 1_700_000_000.0
JAZZ = [
    "Kind of Blue: modal jazz trumpet classic",
    "Bebop saxophone quartet live at the Village Vanguard",
    "Late night jazz piano trio",
    "Swing big band jazz standards",
    "Cool jazz trumpet ballads",
    "Hard bop drums and tenor sax session",
]
COOKING = {
    "pasta": "Fresh pasta recipes: carbonara, cacio e pepe and pesto",
    "sourdough": "Sourdough bread: starter, folding and baking",
    "curry": "A weeknight chicken curry with rice",
    "barbecue": "Barbecue ribs and grilled vegetables for a summer evening",
}


@pytest.fixture(scope="module")
def minilm(minilm_path: Path) -> Any:
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    return TextEncoder(TextEncoderConfig(model_path=str(minilm_path)))


def jazz_fan_world() -> list[Event]:
    """Jazz albums and four cooking items; "me" likes and clicks jazz and follows a jazz fan."""
    ev: list[Event] = [ItemPublished(f"pj{i}", f"jazz{i}", T0 + i, t) for i, t in enumerate(JAZZ)]
    ev += [ItemPublished(f"pc-{k}", k, T0 + 10, t) for k, t in COOKING.items()]
    ev += [
        Like("l0", "me", "jazz0", T0 + 20),
        Click("c1", "me", "jazz1", T0 + 21),
        Follow("f", "me", "fan", T0 + 22),
        Like("l2", "fan", "jazz2", T0 + 23),
        Like("l3", "fan", "jazz3", T0 + 24),
        Click("c4", "fan", "jazz4", T0 + 25),
    ]
    return ev


def random_fused(encoder: Any, seed: int) -> Any:
    """A fused scorer with random weights: an asker model that knows nothing of the words."""
    from socrec_online.models.recommender import FusedRecommender, RecommenderConfig
    from socrec_online.service.fused import FusedScorer

    torch.manual_seed(seed)
    ids = [f"jazz{i}" for i in range(len(JAZZ))] + list(COOKING)
    model = FusedRecommender(RecommenderConfig(n_users=2, n_items=len(ids), text_dim=encoder.dim, dim=16))
    return FusedScorer(model, ["me", "fan"], ids)


@pytest.mark.parametrize("scorer", ["zero-shot", "fused-0", "fused-1"])
def test_a_jazz_fan_asking_for_dinner_gets_cooking(minilm: Any, scorer: str) -> None:
    eng = Engine(Settings(device="cpu", top_k=3, who_to_follow_k=0), minilm)
    if scorer != "zero-shot":
        eng.swap_model(random_fused(minilm, int(scorer[-1])), scorer)
    eng.learn_many(jazz_fan_world())
    if scorer == "zero-shot":  # without words, the history rules
        recs = eng.recommend_many(["me"], who_to_follow=False)[0]["items"]
        assert all(e["id"].startswith("jazz") for e in recs)
    (ans,) = eng.answer_queries([Query("q", "me", T0 + 30, "something to cook for dinner tonight")])
    assert ans["model_version"] == scorer
    top = [e["id"] for e in ans["items"]]
    assert len(top) == 3 and set(top) <= set(COOKING), top


PASTA = {
    "tomato": "pasta recipe with tomato sauce",
    "pesto": "pasta recipe with basil pesto",
    "mushroom": "pasta recipe with wild mushrooms",
}


def test_history_reorders_within_what_matches(minilm: Any) -> None:
    """Same words, different friends: the same three pasta items, each asker's friend's pick first."""
    eng = Engine(Settings(device="cpu", top_k=3, who_to_follow_k=0), minilm)
    others = ["Bebop saxophone quartet live", "Late night jazz piano trio", "gravel bike climb", "sourdough bread"]
    ev: list[Event] = [ItemPublished(f"p-{k}", k, T0, t) for k, t in PASTA.items()]
    ev += [ItemPublished(f"o{i}", f"o{i}", T0, t) for i, t in enumerate(others)]
    ev += [
        Click("a1", "alice", "o0", T0 + 1),  # alice's history is jazz, bob's cycling
        Click("b1", "bob", "o2", T0 + 1),
        Follow("fa", "alice", "ann", T0 + 2),
        Follow("fb", "bob", "ben", T0 + 2),
        Like("la", "ann", "mushroom", T0 + 3),
        Like("lb", "ben", "pesto", T0 + 3),
    ]
    eng.learn_many(ev)
    alice, bob = eng.answer_queries(
        [Query("qa", "alice", T0 + 5, "pasta recipes"), Query("qb", "bob", T0 + 5, "pasta recipes")]
    )
    a = [e["id"] for e in alice["items"]]
    b = [e["id"] for e in bob["items"]]
    assert set(a) == set(b) == set(PASTA), (a, b)
    assert a[0] == "mushroom" and b[0] == "pesto", (a, b)
    assert alice["items"][0]["reason"].endswith("liked by 1 person you follow")


def test_the_rule_keeps_every_match_above_every_non_match() -> None:
    rel = torch.tensor([[0.60, 0.58, 0.50, 0.20], [0.60, 0.58, 0.50, 0.20]])
    personal = torch.tensor([[0.0, 1.0, 9.0, 9.0], [5.0, 1.0, 9.0, 9.0]])  # history loves items 2 and 3
    allowed = torch.ones(2, 4, dtype=torch.bool)
    score, match = query_scores(rel, personal, allowed, QueryRule(band=0.05, history_weight=0.05, floor=0.25))
    assert match.tolist() == [[True, True, False, False]] * 2
    order = score.argsort(dim=1, descending=True).tolist()
    assert order == [[1, 0, 2, 3], [0, 1, 2, 3]]  # history swaps the matches, never lifts 2 or 3
    assert torch.allclose(score[:, 2:], rel[:, 2:])


def test_an_item_the_asker_may_not_see_does_not_set_the_band() -> None:
    rel = torch.tensor([[0.40, 0.38, 0.90]])
    allowed = torch.tensor([[True, True, False]])  # the 0.90 item is the asker's own
    _, match = query_scores(rel, torch.zeros(1, 3), allowed, QueryRule(band=0.05, history_weight=0.05, floor=0.25))
    assert match.tolist() == [[True, True, False]]


def test_words_that_match_nothing_leave_the_askers_own_ranking() -> None:
    rel = torch.tensor([[0.10, 0.05, 0.12]])
    personal = torch.tensor([[3.0, 1.0, 2.0]])
    allowed = torch.tensor([[True, True, False]])  # item 2: seen by the asker
    score, match = query_scores(rel, personal, allowed, QueryRule(band=0.05, history_weight=0.05, floor=0.25))
    assert match.tolist() == [[True, True, False]]
    assert score[0, 0] > score[0, 1]  # every word is below the floor: history alone orders
    assert score[0, :2].tolist() == pytest.approx([0.05, 0.0])


def test_the_labelled_query_set_is_as_described() -> None:
    """>= 50 queries over the synthetic topics; a "paraphrase" shares no word with its topic."""
    import re

    from benchmarks.queries import load_queries
    from socrec_online.data.synthetic import TOPICS

    rows = load_queries()
    assert len(rows) >= 50 and {t for t, _, _ in rows} == set(TOPICS)
    for topic, style, text in rows:
        shared = set(re.findall(r"[a-z]+", text.lower())) & (set(TOPICS[topic]) | set(topic.split()))
        assert style in ("easy", "paraphrase") and (style == "easy") == bool(shared), (topic, style, text)
    assert sum(s == "paraphrase" for _, s, _ in rows) >= 25
