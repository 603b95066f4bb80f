"""Which user messages are kept as unanswered questions, and what is kept of them."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Dict, List, Optional

import pytest

from bot.unanswered.decision import (
    FALLBACK,
    LOW_CONFIDENCE,
    question_from_event,
    shows_risk,
    unanswered_reason,
)

BAR = 0.6
NOV_20 = datetime(2026, 11, 20, 15, 30, tzinfo=timezone.utc).timestamp()


def parse_data(
    intent: str,
    confidence: float = 0.9,
    answer: Optional[str] = None,
    answer_confidence: Optional[float] = None,
    ranking: Optional[List[str]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    data: Dict[str, Any] = {
        "intent": {"name": intent, "confidence": confidence},
        "entities": [],
        "intent_ranking": [{"name": name, "confidence": 0.5} for name in (ranking or [intent])],
        "response_selector": {"all_retrieval_intents": ["faq"], "default": {"response": {}, "ranking": []}},
    }
    if answer is not None:
        data["response_selector"]["faq"] = {
            "response": {
                "intent_response_key": answer,
                "confidence": answer_confidence,
                "responses": [{"text": "A curated answer."}],
                "utter_action": f"utter_{answer}",
            },
            "ranking": [{"intent_response_key": answer, "confidence": answer_confidence}],
        }
    data.update(extra)
    return data


def user_event(text: str, data: Dict[str, Any], sender: str = "conversation-42") -> Dict[str, Any]:
    return {
        "sender_id": sender,
        "event": "user",
        "timestamp": NOV_20,
        "text": text,
        "parse_data": {"text": text, **data},
        "input_channel": "rest",
        "message_id": "abc123",
        "metadata": {"user_agent": "test"},
    }


RISK_URGENT = parse_data(
    "risk_urgent",
    1.0,
    "faq/recreational_use",
    0.3,
    entities=[{"entity": "risk_level", "value": "urgent"}, {"entity": "risk_category", "value": "suicide"}],
    safety_screen={"level": "urgent", "category": "suicide", "source": "screen"},
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (parse_data("nlu_fallback", 0.7, "faq/what_is_mdma", 0.2, ["nlu_fallback", "faq"]), FALLBACK),
        (parse_data("faq", 0.98, "faq/what_is_ptsd", 0.99), None),
        (parse_data("faq", 0.98, "faq/availability", 0.40), LOW_CONFIDENCE),
        (parse_data("faq", 0.98, "faq/availability", 0.60), None),
        (parse_data("faq", 0.98, "faq/availability", 0.59), LOW_CONFIDENCE),
        (parse_data("faq", 0.9), LOW_CONFIDENCE),  # an FAQ intent without any answer
        (parse_data("greet", 0.99), None),
        (parse_data("out_of_scope", 0.5), None),
        (parse_data("something_else", 1.0), None),
        # Contact details override the intent; the question beneath is judged as usual.
        (parse_data("provide_contact", 1.0, "faq/x", 0.2, ["provide_contact", "nlu_fallback", "faq"]), FALLBACK),
        (parse_data("provide_contact", 1.0, "faq/availability", 0.4, ["provide_contact", "faq"]), LOW_CONFIDENCE),
        (parse_data("provide_contact", 1.0, "faq/availability", 0.9, ["provide_contact", "faq"]), None),
        (parse_data("provide_contact", 1.0, "faq/availability", 0.3, ["provide_contact", "request_human"]), None),
        # Risk is never an unanswered question, whatever else the message shows.
        (RISK_URGENT, None),
        (parse_data("risk_priority", 0.4, "faq/x", 0.1), None),
        (parse_data("nlu_fallback", 0.5, "faq/x", 0.1, safety_screen={"level": "priority"}), None),
        (parse_data("nlu_fallback", 0.5, entities=[{"entity": "risk_level", "value": "priority"}]), None),
        (parse_data("faq", 0.9, "faq/x", 0.1, entities=[{"entity": "risk_category", "value": "abuse_danger"}]), None),
    ],
    ids=[
        "fallback",
        "confident-answer",
        "unsure-answer",
        "answer-at-the-bar",
        "answer-just-below-the-bar",
        "faq-without-answer",
        "greeting",
        "out-of-scope",
        "something-else",
        "contact-over-fallback",
        "contact-over-unsure-answer",
        "contact-over-confident-answer",
        "contact-over-request-human",
        "risk-urgent-screen",
        "risk-priority-intent",
        "safety-screen-key",
        "risk-level-entity",
        "risk-category-entity",
    ],
)
def test_reason(data: Dict[str, Any], expected: Optional[str]) -> None:
    assert unanswered_reason(data, BAR) == expected


def test_the_bar_is_configurable() -> None:
    data = parse_data("faq", 0.98, "faq/availability", 0.45)
    assert unanswered_reason(data, 0.6) == LOW_CONFIDENCE
    assert unanswered_reason(data, 0.4) is None


@pytest.mark.parametrize(
    "data",
    [
        RISK_URGENT,
        parse_data("risk_urgent", 0.3),
        parse_data("nlu_fallback", safety_screen=None),
        parse_data("faq", entities=[{"entity": "risk_level", "value": "urgent"}]),
    ],
    ids=["screen", "intent", "screen-key-even-empty", "entity"],
)
def test_risk_is_recognised(data: Dict[str, Any]) -> None:
    assert shows_risk(data)


def test_a_kept_question_has_scrubbed_text_day_reason_and_guess_but_no_conversation() -> None:
    event = user_event(
        "What about psilocybin? My name is Sarah, mail sarah@example.org",
        parse_data("provide_contact", 1.0, "faq/what_is_mdma", 0.25, ["provide_contact", "nlu_fallback", "faq"]),
    )
    question = question_from_event(event, BAR)
    assert question is not None
    assert question.text == "What about psilocybin? My name is [NAME], mail [EMAIL]"
    assert question.reason == FALLBACK
    assert question.received_on == date(2026, 11, 20)
    assert question.guessed_topic == "faq/what_is_mdma"
    assert question.topic_confidence == pytest.approx(0.25)
    kept = repr(question)
    for private in ("conversation-42", "abc123", "rest", "user_agent", "15:30", "sarah@", "Sarah"):
        assert private not in kept


def test_a_risk_message_is_never_kept_even_when_it_also_fell_back() -> None:
    data = parse_data("nlu_fallback", 0.5, "faq/x", 0.1, ["nlu_fallback"], safety_screen={"level": "urgent"})
    assert question_from_event(user_event("I want to end it all, what about psilocybin", data), BAR) is None
    assert question_from_event(user_event("I want to end it all", RISK_URGENT), BAR) is None


@pytest.mark.parametrize(
    "event",
    [
        {"event": "bot", "text": "Did you mean...", "parse_data": parse_data("nlu_fallback")},
        {"event": "action", "name": "utter_did_you_mean"},
        user_event("/faq/legal_status", parse_data("nlu_fallback")),
        user_event(
            "jane@example.org 555 123 4567",
            parse_data("provide_contact", 1.0, ranking=["provide_contact", "nlu_fallback"]),
        ),
        {"event": "user", "text": "no parse data here"},
        {"event": "user", "text": None, "parse_data": parse_data("nlu_fallback")},
    ],
    ids=["bot-event", "action-event", "button-payload", "only-contact-details", "no-parse-data", "no-text"],
)
def test_nothing_to_keep(event: Dict[str, Any]) -> None:
    assert question_from_event(event, BAR) is None


def test_an_event_without_timestamp_is_dated_today() -> None:
    event = user_event("what about psilocybin", parse_data("nlu_fallback"))
    del event["timestamp"]
    question = question_from_event(event, BAR)
    assert question is not None
    assert question.received_on == datetime.now(timezone.utc).date()
