"""Decides which user messages are unanswered questions, and what of them may be kept.

A message is kept when the assistant fell back (`nlu_fallback`, which is also
what the "Did you mean" gate sets) or answered an FAQ with less confidence than
the configured bar. A message that shows risk is never kept, whatever else it
shows. The contact-detail classifier overrides the intent of any message with
an email or phone number; for those the decision looks at what the NLU
understood beneath that override, so a question that also carries contact
details is judged like any other (and its contact details are scrubbed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, List, Mapping, Optional, Tuple

from bot.unanswered.scrub import has_words, scrub_personal_data

FALLBACK = "fallback"
LOW_CONFIDENCE = "low_confidence"
REASONS = (FALLBACK, LOW_CONFIDENCE)

FALLBACK_INTENT = "nlu_fallback"
CONTACT_INTENT = "provide_contact"
RISK_INTENTS = frozenset({"risk_urgent", "risk_priority"})
RISK_INTENT_PREFIX = "risk_"
RISK_ENTITIES = frozenset({"risk_level", "risk_category"})
SAFETY_SCREEN_KEY = "safety_screen"
RESPONSE_SELECTOR_KEY = "response_selector"
DEFAULT_RETRIEVAL_INTENT = "faq"
PAYLOAD_PREFIX = "/"


@dataclass(frozen=True)
class UnansweredQuestion:
    """One question as it is kept: scrubbed text, the day, and what the assistant guessed.

    There is deliberately no conversation id and no time of day: the record
    cannot be joined back to a conversation.
    """

    received_on: date
    reason: str
    text: str
    guessed_topic: Optional[str] = None
    topic_confidence: Optional[float] = None


def shows_risk(parse_data: Mapping[str, Any]) -> bool:
    """Whether the NLU flagged the message as a person at risk in any way."""
    if SAFETY_SCREEN_KEY in parse_data:
        return True
    name = _intent_name(parse_data.get("intent"))
    if name is not None and (name in RISK_INTENTS or name.startswith(RISK_INTENT_PREFIX)):
        return True
    entities = parse_data.get("entities") or []
    return any(isinstance(e, Mapping) and e.get("entity") in RISK_ENTITIES for e in entities)


def understood_intent(parse_data: Mapping[str, Any]) -> Optional[str]:
    """The intent the NLU understood, looking beneath the contact-detail override."""
    name = _intent_name(parse_data.get("intent"))
    if name != CONTACT_INTENT:
        return name
    for entry in parse_data.get("intent_ranking") or []:
        ranked = _intent_name(entry)
        if ranked is not None and ranked != CONTACT_INTENT:
            return ranked
    return None


def answer_guess(
    parse_data: Mapping[str, Any], retrieval_intent: Optional[str]
) -> Tuple[Optional[str], Optional[float]]:
    """The FAQ answer the response selector chose and its confidence, if any."""
    selectors = parse_data.get(RESPONSE_SELECTOR_KEY) or {}
    if not isinstance(selectors, Mapping):
        return None, None
    names = [retrieval_intent, *(selectors.get("all_retrieval_intents") or []), DEFAULT_RETRIEVAL_INTENT, "default"]
    for name in names:
        selected = selectors.get(name) if name else None
        if isinstance(selected, Mapping):
            response = selected.get("response") or {}
            topic = response.get("intent_response_key")
            confidence = response.get("confidence")
            return (
                topic if isinstance(topic, str) else None,
                float(confidence) if isinstance(confidence, (int, float)) else None,
            )
    return None, None


def unanswered_reason(parse_data: Mapping[str, Any], min_answer_confidence: float) -> Optional[str]:
    """`fallback`, `low_confidence`, or None when the message was answered well (or is risk)."""
    if shows_risk(parse_data):
        return None
    intent = understood_intent(parse_data)
    if intent == FALLBACK_INTENT:
        return FALLBACK
    if intent is not None and intent in _retrieval_intents(parse_data):
        _, confidence = answer_guess(parse_data, intent)
        if confidence is None or confidence < min_answer_confidence:
            return LOW_CONFIDENCE
    return None


def question_from_event(
    event: Mapping[str, Any], min_answer_confidence: float
) -> Optional[UnansweredQuestion]:
    """The record to keep for a Rasa event, or None if there is nothing (allowed) to keep."""
    if event.get("event") != "user":
        return None
    parse_data = event.get("parse_data")
    if not isinstance(parse_data, Mapping):
        return None
    # Risk first: a risk message is never looked at further, let alone stored.
    if shows_risk(parse_data):
        return None
    text = event.get("text")
    if not isinstance(text, str) or text.lstrip().startswith(PAYLOAD_PREFIX):
        return None
    reason = unanswered_reason(parse_data, min_answer_confidence)
    if reason is None:
        return None
    scrubbed = scrub_personal_data(text)
    if not has_words(scrubbed):
        return None
    topic, confidence = answer_guess(parse_data, understood_intent(parse_data))
    return UnansweredQuestion(
        received_on=_day_of(event.get("timestamp")),
        reason=reason,
        text=scrubbed,
        guessed_topic=topic,
        topic_confidence=confidence,
    )


def _retrieval_intents(parse_data: Mapping[str, Any]) -> List[str]:
    selectors = parse_data.get(RESPONSE_SELECTOR_KEY)
    named = selectors.get("all_retrieval_intents") if isinstance(selectors, Mapping) else None
    return [*(named or []), DEFAULT_RETRIEVAL_INTENT]


def _intent_name(intent: Any) -> Optional[str]:
    if isinstance(intent, Mapping):
        name = intent.get("name")
        return name if isinstance(name, str) else None
    return None


def _day_of(timestamp: Any) -> date:
    """The UTC day of a Rasa event timestamp (seconds since the epoch), today if absent."""
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(float(timestamp), tz=timezone.utc).date()
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(timezone.utc).date()

