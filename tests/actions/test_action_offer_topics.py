"""ActionOfferTopics: "Did you mean" with the closest FAQ topics, or the general topics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.nlu.training_data.loading import load_data
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.topics import ActionOfferTopics

ROOT = Path(__file__).resolve().parents[2]
SOMETHING_ELSE = {"title": "Something else", "payload": "/something_else"}


@pytest.fixture
def domain() -> Dict[str, Any]:
    """The project's domain with the FAQ answers from data/responses.yml, as the action server sees it."""
    answers = load_data(str(ROOT / "data" / "responses.yml")).responses
    return Domain.load(str(ROOT / "domain.yml")).merge(Domain.from_dict({"responses": answers})).as_dict()


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()


def _tracker(ranking: Optional[List[Tuple[str, float]]], selector_key: str = "faq") -> Tracker:
    latest_message: Dict[str, Any] = {
        "text": "something about mdma",
        "intent": {"name": "nlu_fallback", "confidence": 0.3},
        "entities": [],
    }
    if ranking is not None:
        latest_message["response_selector"] = {
            "all_retrieval_intents": ["faq"],
            selector_key: {
                "response": {"intent_response_key": ranking[0][0] if ranking else None},
                "ranking": [
                    {"id": None, "confidence": confidence, "intent_response_key": key} for key, confidence in ranking
                ],
            },
        }
    return Tracker.from_dict(
        {
            "sender_id": "test-user",
            "slots": {},
            "latest_message": latest_message,
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        }
    )


def _run(dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[Dict[str, Any]]:
    return asyncio.run(ActionOfferTopics().run(dispatcher, tracker, domain))


def test_name():
    assert ActionOfferTopics().name() == "action_offer_topics"


def test_offers_the_top_three_topics_and_something_else(dispatcher, domain):
    tracker = _tracker(
        [
            ("faq/legal_status", 0.4),
            ("faq/breakthrough_therapy_designation", 0.3),
            ("faq/availability", 0.2),
            ("faq/is_it_safe", 0.1),
        ]
    )

    events = _run(dispatcher, tracker, domain)

    assert events == []
    [message] = dispatcher.messages
    assert message["response"] == "utter_did_you_mean"
    assert message["buttons"] == [
        {"title": "Legal status", "payload": "/faq/legal_status"},
        {"title": "Breakthrough Therapy Designation", "payload": "/faq/breakthrough_therapy_designation"},
        {"title": "How to access it", "payload": "/faq/availability"},
        SOMETHING_ELSE,
    ]


def test_button_titles_come_from_each_answers_metadata(dispatcher, domain):
    keys = ["faq/what_is_ptsd", "faq/is_it_safe", "faq/mdma_session"]
    tracker = _tracker([(key, 0.3) for key in keys])

    _run(dispatcher, tracker, domain)

    [message] = dispatcher.messages
    expected_titles = [domain["responses"][f"utter_{key}"][0]["metadata"]["title"] for key in keys]
    assert [button["title"] for button in message["buttons"][:3]] == expected_titles
    assert [button["payload"] for button in message["buttons"][:3]] == [f"/{key}" for key in keys]


@pytest.mark.parametrize(
    "ranking, expected_payloads",
    [
        pytest.param(
            [("faq/legal_status", 0.6), ("faq/is_it_safe", 0.04), ("faq/availability", 0.3)],
            ["/faq/legal_status", "/faq/availability"],
            id="low confidence skipped",
        ),
        pytest.param(
            [("faq/legal_status", 0.6), ("faq/gone", 0.3), ("faq/availability", 0.1)],
            ["/faq/legal_status", "/faq/availability"],
            id="unknown answer skipped",
        ),
        pytest.param(
            [("faq/legal_status", 0.5), ("faq/availability", 0.05)],
            ["/faq/legal_status", "/faq/availability"],
            id="exactly at the minimum confidence",
        ),
    ],
)
def test_skips_candidates_that_cannot_be_offered(
    dispatcher, domain, ranking: List[Tuple[str, float]], expected_payloads: List[str]
):
    events = _run(dispatcher, _tracker(ranking), domain)

    assert events == []
    [message] = dispatcher.messages
    assert message["response"] == "utter_did_you_mean"
    assert [button["payload"] for button in message["buttons"]] == [*expected_payloads, "/something_else"]


@pytest.mark.parametrize(
    "ranking",
    [
        pytest.param(None, id="no response selector"),
        pytest.param([], id="empty ranking"),
        pytest.param([("faq/legal_status", 0.97)], id="one candidate"),
        pytest.param([("faq/legal_status", 0.97), ("faq/is_it_safe", 0.03)], id="second too unlikely"),
        pytest.param([("faq/legal_status", 0.5), ("faq/gone", 0.5)], id="second unknown"),
    ],
)
def test_fewer_than_two_topics_offers_the_general_topics(
    dispatcher, domain, ranking: Optional[List[Tuple[str, float]]]
):
    events = _run(dispatcher, _tracker(ranking), domain)

    assert events == []
    [message] = dispatcher.messages
    assert message["response"] == "utter_default"
    assert message["buttons"] == []


def test_reads_the_default_selector_too(dispatcher, domain):
    tracker = _tracker([("faq/what_is_ptsd", 0.5), ("faq/ptsd_symptoms", 0.4)], selector_key="default")

    _run(dispatcher, tracker, domain)

    [message] = dispatcher.messages
    assert message["response"] == "utter_did_you_mean"
    assert [button["payload"] for button in message["buttons"]] == [
        "/faq/what_is_ptsd",
        "/faq/ptsd_symptoms",
        "/something_else",
    ]


def test_responses_it_uses_exist_in_the_domain(domain):
    assert {"utter_did_you_mean", "utter_default"} <= set(domain["responses"])
    assert "action_offer_topics" in domain["actions"]
    assert "something_else" in domain["intents"]
