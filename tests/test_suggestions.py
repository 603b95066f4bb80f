"""suggested_topics: the closest FAQ answers as buttons, from the real domain's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.nlu.training_data.loading import load_data

from bot.suggestions import enough_to_suggest, suggested_topics, topic_title

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def responses() -> Dict[str, List[Dict[str, Any]]]:
    """The domain's responses with the FAQ answers from data/responses.yml, as in a trained model."""
    answers = load_data(str(ROOT / "data" / "responses.yml")).responses
    return Domain.load(str(ROOT / "domain.yml")).merge(Domain.from_dict({"responses": answers})).responses


def selector(ranking: List[Tuple[str, float]], key: str = "faq") -> Dict[str, Any]:
    """Parse data with the response selector output our NLU leaves on a message."""
    return {
        "text": "something about mdma",
        "intent": {"name": "nlu_fallback", "confidence": 0.3},
        "response_selector": {
            "all_retrieval_intents": ["faq"],
            key: {
                "response": {"intent_response_key": ranking[0][0] if ranking else None},
                "ranking": [{"id": None, "confidence": c, "intent_response_key": k} for k, c in ranking],
            },
        },
    }


def test_title_comes_from_the_answers_metadata(responses):
    assert topic_title(responses, "faq/legal_status") == "Legal status"
    assert topic_title(responses, "faq/gone") is None


def test_every_faq_answer_has_a_title_to_offer(responses):
    keys = [name.removeprefix("utter_") for name in responses if name.startswith("utter_faq/")]
    assert len(keys) == 28
    assert all(topic_title(responses, key) for key in keys)


def test_at_most_three_best_first(responses):
    ranking = [("faq/legal_status", 0.4), ("faq/availability", 0.3), ("faq/is_it_safe", 0.2), ("faq/benefits", 0.1)]

    topics = suggested_topics(selector(ranking), responses)

    assert topics == [
        {"title": "Legal status", "payload": "/faq/legal_status"},
        {"title": "How to access it", "payload": "/faq/availability"},
        {"title": topic_title(responses, "faq/is_it_safe"), "payload": "/faq/is_it_safe"},
    ]


@pytest.mark.parametrize(
    "parse_data, expected",
    [
        pytest.param(None, [], id="no parse data"),
        pytest.param({"text": "hi"}, [], id="no response selector"),
        pytest.param(selector([]), [], id="empty ranking"),
        pytest.param(
            selector([("faq/legal_status", 0.6), ("faq/is_it_safe", 0.04), ("faq/gone", 0.3), ("faq/benefits", 0.05)]),
            ["/faq/legal_status", "/faq/benefits"],
            id="too unlikely and unknown skipped, minimum kept",
        ),
        pytest.param(
            selector([("faq/what_is_ptsd", 0.5), ("faq/ptsd_symptoms", 0.4)], key="default"),
            ["/faq/what_is_ptsd", "/faq/ptsd_symptoms"],
            id="default selector",
        ),
    ],
)
def test_which_topics_can_be_offered(responses, parse_data: Optional[Dict[str, Any]], expected: List[str]) -> None:
    assert [topic["payload"] for topic in suggested_topics(parse_data, responses)] == expected


@pytest.mark.parametrize("count, enough", [(0, False), (1, False), (2, True), (3, True)])
def test_two_topics_are_enough_to_ask(count: int, enough: bool) -> None:
    assert enough_to_suggest([{"title": "t", "payload": "/faq/t"}] * count) is enough
