"""RegionalResponseGenerator: crisis numbers filled in, and "Did you mean" rendered in the Rasa server.

Each test runs the response action the way Rasa's processor does: the action
Rasa picks for the name (no action endpoint at all), with the generator Rasa
builds from `nlg: {type: bot.nlg.RegionalResponseGenerator}`, on a real tracker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from rasa.core.actions.action import ActionBotResponse, action_for_name_or_text
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import NaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.loading import load_data
from rasa.utils.endpoints import EndpointConfig

from bot.crisis import load_crisis_resources
from bot.nlg import RegionalResponseGenerator

ROOT = Path(__file__).resolve().parent.parent
SOMETHING_ELSE = {"title": "Something else", "payload": "/something_else"}


@pytest.fixture(scope="module")
def domain() -> Domain:
    """The project's domain with the FAQ answers from data/responses.yml, as in a trained model."""
    answers = load_data(str(ROOT / "data" / "responses.yml")).responses
    return Domain.load(str(ROOT / "domain.yml")).merge(Domain.from_dict({"responses": answers}))


@pytest.fixture
def nlg(domain: Domain, monkeypatch: pytest.MonkeyPatch) -> NaturalLanguageGenerator:
    """The generator as Rasa creates it from endpoints.yml, for the US region."""
    monkeypatch.setenv("CRISIS_RESOURCES_FILE", str(ROOT / "crisis_resources.yml"))
    monkeypatch.setenv("CRISIS_REGION", "US")
    return NaturalLanguageGenerator.create(EndpointConfig(type="bot.nlg.RegionalResponseGenerator"), domain)


def tracker_after(domain: Domain, ranking: Optional[List[Tuple[str, float]]], selector_key: str = "faq"):
    """A conversation whose last message fell back, with the selector ranking the NLU left on it."""
    parse_data: Dict[str, Any] = {"text": "what about the thing", "intent": {"name": "nlu_fallback", "confidence": 0.3}}
    if ranking is not None:
        parse_data["response_selector"] = {
            "all_retrieval_intents": ["faq"],
            selector_key: {
                "response": {"intent_response_key": ranking[0][0] if ranking else None},
                "ranking": [{"id": None, "confidence": c, "intent_response_key": k} for k, c in ranking],
            },
        }
    message = UserUttered(parse_data["text"], intent=parse_data["intent"], parse_data=parse_data)
    return DialogueStateTracker.from_events("test-user", [ActionExecuted("action_listen"), message], domain.slots)


def run(name: str, nlg: NaturalLanguageGenerator, tracker: DialogueStateTracker, domain: Domain) -> BotUttered:
    """Runs the action Rasa picks for `name`, with no action server configured; returns its one message."""
    action = action_for_name_or_text(name, domain, None)
    events = asyncio.run(action.run(CollectingOutputChannel(), nlg, tracker, domain))
    [event] = events
    assert isinstance(event, BotUttered)
    return event


def test_rasa_builds_our_generator_from_the_endpoint_type(nlg):
    assert isinstance(nlg, RegionalResponseGenerator)


def test_did_you_mean_is_a_response_not_a_custom_action(domain):
    assert isinstance(action_for_name_or_text("utter_did_you_mean", domain, None), ActionBotResponse)
    assert "action_offer_topics" not in domain.action_names_or_texts


def test_did_you_mean_offers_the_top_three_topics_then_something_else(nlg, domain):
    tracker = tracker_after(
        domain,
        [
            ("faq/legal_status", 0.4),
            ("faq/breakthrough_therapy_designation", 0.3),
            ("faq/availability", 0.2),
            ("faq/is_it_safe", 0.1),
        ],
    )

    event = run("utter_did_you_mean", nlg, tracker, domain)

    assert event.text == domain.responses["utter_did_you_mean"][0]["text"]
    assert event.metadata["utter_action"] == "utter_did_you_mean"
    assert event.data["buttons"] == [
        {"title": "Legal status", "payload": "/faq/legal_status"},
        {"title": "Breakthrough Therapy Designation", "payload": "/faq/breakthrough_therapy_designation"},
        {"title": "How to access it", "payload": "/faq/availability"},
        SOMETHING_ELSE,
    ]


def test_something_else_is_the_domains_own_button(domain):
    assert domain.responses["utter_did_you_mean"][0]["buttons"] == [SOMETHING_ELSE]


def test_button_titles_come_from_each_answers_metadata(nlg, domain):
    keys = ["faq/what_is_ptsd", "faq/is_it_safe", "faq/mdma_session"]

    event = run("utter_did_you_mean", nlg, tracker_after(domain, [(key, 0.3) for key in keys]), domain)

    expected_titles = [domain.responses[f"utter_{key}"][0]["metadata"]["title"] for key in keys]
    assert [button["title"] for button in event.data["buttons"][:3]] == expected_titles
    assert [button["payload"] for button in event.data["buttons"][:3]] == [f"/{key}" for key in keys]


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
    nlg, domain, ranking: List[Tuple[str, float]], expected_payloads: List[str]
):
    event = run("utter_did_you_mean", nlg, tracker_after(domain, ranking), domain)

    assert event.text == domain.responses["utter_did_you_mean"][0]["text"]
    assert [button["payload"] for button in event.data["buttons"]] == [*expected_payloads, "/something_else"]


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
def test_fewer_than_two_topics_says_the_general_topics(nlg, domain, ranking: Optional[List[Tuple[str, float]]]):
    event = run("utter_did_you_mean", nlg, tracker_after(domain, ranking), domain)

    [general] = domain.responses["utter_default"]
    assert event.text == general["text"]
    assert event.data["buttons"] == general["buttons"]


def test_reads_the_default_selector_too(nlg, domain):
    tracker = tracker_after(domain, [("faq/what_is_ptsd", 0.5), ("faq/ptsd_symptoms", 0.4)], selector_key="default")

    event = run("utter_did_you_mean", nlg, tracker, domain)

    assert [button["payload"] for button in event.data["buttons"]] == [
        "/faq/what_is_ptsd",
        "/faq/ptsd_symptoms",
        "/something_else",
    ]


def test_each_message_gets_its_own_topics(nlg, domain):
    first_tracker = tracker_after(domain, [("faq/legal_status", 0.5), ("faq/benefits", 0.4)])
    second_tracker = tracker_after(domain, [("faq/what_is_mdma", 0.5), ("faq/is_it_safe", 0.4)])

    first = run("utter_did_you_mean", nlg, first_tracker, domain)
    second = run("utter_did_you_mean", nlg, second_tracker, domain)

    assert [b["payload"] for b in first.data["buttons"]] == ["/faq/legal_status", "/faq/benefits", "/something_else"]
    assert [b["payload"] for b in second.data["buttons"]] == ["/faq/what_is_mdma", "/faq/is_it_safe", "/something_else"]
    assert domain.responses["utter_did_you_mean"][0]["buttons"] == [SOMETHING_ELSE], "the domain is left as it was"


def test_other_responses_get_the_regions_crisis_resources(nlg, domain):
    us = load_crisis_resources(ROOT / "crisis_resources.yml", "US")

    event = run("utter_intro", nlg, tracker_after(domain, [("faq/legal_status", 0.5), ("faq/benefits", 0.4)]), domain)

    assert event.text == domain.responses["utter_intro"][0]["text"].format(**us.as_template_variables())
    assert us.emergency_number in event.text
    assert "buttons" not in event.data or not event.data["buttons"]
