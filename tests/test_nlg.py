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
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.loading import load_data
from rasa.utils.endpoints import EndpointConfig

from bot.crisis import load_crisis_resources
from bot.nlg import RegionalResponseGenerator
from bot.risk import Category

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


# --- Crisis replies: one per kind of risk, in every region -----------------------------

CRISIS_RESPONSES = ["utter_crisis", "utter_crisis_priority", "utter_crisis_not_safe"]
CATEGORIES = [category.value for category in Category]


@pytest.fixture(params=["US", "UK", "AU"])
def regional_nlg(request: pytest.FixtureRequest, domain: Domain, monkeypatch: pytest.MonkeyPatch):
    """The generator as Rasa creates it, once for each region, with that region's resources."""
    monkeypatch.setenv("CRISIS_RESOURCES_FILE", str(ROOT / "crisis_resources.yml"))
    monkeypatch.setenv("CRISIS_REGION", request.param)
    generator = NaturalLanguageGenerator.create(EndpointConfig(type="bot.nlg.RegionalResponseGenerator"), domain)
    return generator, load_crisis_resources(ROOT / "crisis_resources.yml", request.param).as_template_variables()


def tracker_with_category(domain: Domain, category: Optional[str]) -> DialogueStateTracker:
    """A conversation whose last message the safety screen flagged with `category` (None: no category)."""
    events: List[Any] = [ActionExecuted("action_listen"), UserUttered("...", intent={"name": "risk_urgent"})]
    if category is not None:
        events.append(SlotSet("risk_category", category))
    return DialogueStateTracker.from_events("test-user", events, domain.slots)


def test_every_risk_category_has_its_own_crisis_reply(domain):
    for name in CRISIS_RESPONSES[:2]:
        conditions = {
            condition["value"]
            for variation in domain.responses[name]
            for condition in variation.get("condition") or []
            if condition["name"] == "risk_category"
        }
        assert conditions == set(CATEGORIES), name
        assert sum(1 for variation in domain.responses[name] if not variation.get("condition")) == 1, name


@pytest.mark.parametrize("name", CRISIS_RESPONSES)
@pytest.mark.parametrize("category", [*CATEGORIES, "unspecified", None])
def test_crisis_replies_are_complete_in_every_region(regional_nlg, domain, name: str, category: Optional[str]):
    nlg, lines = regional_nlg

    text = run(name, nlg, tracker_with_category(domain, category), domain).text

    assert "{" not in text and "}" not in text, text
    assert lines["emergency_number"] in text
    assert "not an emergency service" in text
    assert "alerted" not in text and "care team" not in text, "the care team's part is said separately"


@pytest.mark.parametrize("name", ["utter_crisis", "utter_crisis_priority"])
@pytest.mark.parametrize(
    "category, must_have",
    [
        ("suicide", ["crisis_line", "crisis_text", "veterans_line"]),
        ("self_harm", ["crisis_line", "crisis_text", "veterans_line"]),
        ("medical_emergency", ["emergency_number", "poison_line"]),
        ("harm_to_others", ["emergency_number", "crisis_line"]),
        ("acute_crisis", ["crisis_line"]),
        ("abuse_danger", ["emergency_number", "abuse_line"]),
        ("unspecified", ["emergency_number", "crisis_line"]),
    ],
)
def test_each_kind_of_risk_gets_the_lines_it_needs(regional_nlg, domain, name: str, category: str, must_have):
    nlg, lines = regional_nlg

    text = run(name, nlg, tracker_with_category(domain, category), domain).text

    for line in must_have:
        assert lines[line] in text, f"{line} missing for {category}"
    if category in ("suicide", "self_harm"):
        assert "I'm still here" in text
    if category == "medical_emergency":
        assert text.index(lines["emergency_number"]) < text.index(lines["poison_line"]), "the emergency number first"
        assert "what was taken" in text
        assert lines["crisis_line"] not in text[: text.index(lines["poison_line"])], "not the crisis line first"
    if category == "acute_crisis":
        assert "breathe" in text.lower(), "a grounding step"
    if category == "abuse_danger":
        assert lines["poison_line"] not in text and lines["veterans_line"] not in text


@pytest.mark.parametrize("category", ["medical_emergency", "abuse_danger", "harm_to_others"])
def test_not_safe_reply_fits_the_kind_of_risk(regional_nlg, domain, category: str):
    nlg, lines = regional_nlg
    expected = {"medical_emergency": "poison_line", "abuse_danger": "abuse_line", "harm_to_others": "crisis_line"}

    text = run("utter_crisis_not_safe", nlg, tracker_with_category(domain, category), domain).text

    assert lines[expected[category]] in text
    assert "hurt yourself" not in text, "the self-harm wording is for the default reply"


def test_faq_answers_name_the_regions_lines(regional_nlg, domain):
    nlg, lines = regional_nlg
    tracker = tracker_with_category(domain, None)

    for name in [key for key in domain.responses if key.startswith("utter_faq/")]:
        text = run(name, nlg, tracker, domain).text
        assert "{" not in text and "}" not in text, name
