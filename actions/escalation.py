"""Actions that bring a clinician in: risk escalations, requests for a person, contact details."""

from __future__ import annotations

import abc
import asyncio
from functools import lru_cache
from typing import Any, Dict, List, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.contact import contact_detail
from bot.escalation.recorder import EscalationRecorder, EscalationRequest
from bot.escalation.store import EscalationStore
from bot.settings import Settings

RISK_LEVELS = {"risk_urgent": "urgent", "risk_priority": "priority"}
LEVEL_ORDER = {"low": 0, "priority": 1, "urgent": 2}
TRANSCRIPT_TURNS = 60


@lru_cache(maxsize=1)
def escalation_recorder() -> EscalationRecorder:
    """The action server's recorder, built on first use from the environment."""
    settings = Settings.from_env()
    return EscalationRecorder(
        lambda: EscalationStore.from_config(settings.escalation), settings.escalation_spool_dir
    )


def conversation_transcript(tracker: Tracker, turns: int = TRANSCRIPT_TURNS) -> List[Dict[Text, Any]]:
    """The last user and bot messages, kept only in the escalation database."""
    transcript: List[Dict[Text, Any]] = []
    for event in tracker.events:
        kind = event.get("event")
        if kind in ("user", "bot") and event.get("text"):
            transcript.append(
                {"sender": kind, "text": event["text"], "timestamp": event.get("timestamp")}
            )
    return transcript[-turns:]


class _EscalationAction(Action, abc.ABC):
    """Records an escalation durably, then returns at once; delivery is in the background."""

    @abc.abstractmethod
    def name(self) -> Text:
        """Unique identifier of the action."""

    @abc.abstractmethod
    def classify(self, tracker: Tracker) -> Tuple[Text, Text, Text]:
        """The (kind, level, category) of the escalation to record."""

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        """Creates the escalation unless one at this level or higher exists already."""
        kind, level, category = self.classify(tracker)
        previous_level = tracker.get_slot("escalation_level")
        if tracker.get_slot("escalation_id") and LEVEL_ORDER.get(previous_level or "", -1) >= LEVEL_ORDER[level]:
            return []
        request = EscalationRequest(
            conversation_id=tracker.sender_id,
            channel=tracker.get_latest_input_channel() or "unknown",
            kind=kind,
            level=level,
            category=category,
            transcript=conversation_transcript(tracker),
        )
        escalation_id = await asyncio.to_thread(escalation_recorder().record, request)
        return [SlotSet("escalation_id", escalation_id or "spooled"), SlotSet("escalation_level", level)]


class ActionEscalateToClinician(_EscalationAction):
    """Escalates a person at risk to a clinician.

    The crisis reply has already been sent by a domain response before this
    runs, so a slow or failing database never delays it.
    """

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_escalate_to_clinician"

    def classify(self, tracker: Tracker) -> Tuple[Text, Text, Text]:
        """Level and category from the risk screen's slots, else from the intent."""
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        level = tracker.get_slot("risk_level") or RISK_LEVELS.get(intent or "", "priority")
        return "risk", level, tracker.get_slot("risk_category") or "unspecified"


class ActionRequestCareTeam(_EscalationAction):
    """Puts a non-urgent wish to talk to a person in the care team's queue (low priority)."""

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_request_care_team"

    def classify(self, tracker: Tracker) -> Tuple[Text, Text, Text]:
        """A human request is always low priority."""
        return "human_request", "low", "human_request"


class ActionRecordContact(Action):
    """Stores how the person agreed to be contacted, with their escalation."""

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_record_contact"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        """Saves a phone number or email address given after consent."""
        detail = contact_detail(tracker.latest_message.get("text"))
        escalation_id = tracker.get_slot("escalation_id")
        if detail is None:
            dispatcher.utter_message(response="utter_ask_contact_detail_again")
            return []
        if not escalation_id or escalation_id == "spooled":
            dispatcher.utter_message(response="utter_contact_not_saved")
            return []
        method, value = detail
        saved = await asyncio.to_thread(escalation_recorder().record_contact, escalation_id, method, value)
        dispatcher.utter_message(response="utter_contact_saved" if saved else "utter_contact_not_saved")
        return []
