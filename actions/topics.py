"""Actions that help a person find the right FAQ topic."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

RETRIEVAL_INTENT = "faq"
MAX_SUGGESTIONS = 3
MIN_SUGGESTION_CONFIDENCE = 0.05


def topic_title(domain: DomainDict, intent_response_key: Text) -> Optional[Text]:
    """The short title kept with an FAQ answer's metadata, if the answer exists."""
    variations = (domain.get("responses") or {}).get(f"utter_{intent_response_key}") or []
    for variation in variations:
        title = (variation.get("metadata") or {}).get("title")
        if title:
            return str(title)
    return None


def suggested_topics(tracker: Tracker, domain: DomainDict) -> List[Dict[Text, Any]]:
    """The closest FAQ answers to the last message, best first, as buttons."""
    selectors = (tracker.latest_message or {}).get("response_selector") or {}
    selected = selectors.get(RETRIEVAL_INTENT) or selectors.get("default") or {}
    buttons: List[Dict[Text, Any]] = []
    for candidate in selected.get("ranking") or []:
        key = candidate.get("intent_response_key")
        if not key or float(candidate.get("confidence") or 0.0) < MIN_SUGGESTION_CONFIDENCE:
            continue
        title = topic_title(domain, key)
        if title:
            buttons.append({"title": title, "payload": f"/{key}"})
        if len(buttons) == MAX_SUGGESTIONS:
            break
    return buttons


class ActionOfferTopics(Action):
    """Asks "Did you mean …" with the closest topics instead of guessing an answer."""

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_offer_topics"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        """Offers the top 2-3 topics plus "Something else", or general topics."""
        buttons = suggested_topics(tracker, domain)
        if len(buttons) >= 2:
            buttons.append({"title": "Something else", "payload": "/something_else"})
            dispatcher.utter_message(response="utter_did_you_mean", buttons=buttons)
        else:
            dispatcher.utter_message(response="utter_default")
        return []
