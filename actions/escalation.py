"""Actions that complete what the Rasa server decided: escalation slots, contact details given with consent.

The escalation itself is recorded inside the Rasa server, before the crisis
reply goes out (`bot.escalation.decision`), so it does not depend on this
server being up. These actions only add what needs the person's next words
(a phone number or email after they agreed, a withdrawal) and keep the
conversation's slots in step. They never speak: the Rasa server says what
happened from the `contact_outcome` slot they set, and says it could not pass
the details on when this server's events never arrived.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import Any, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.contact import contact_detail
from bot.escalation import decision
from bot.escalation.recorder import EscalationRecorder
from bot.escalation.records import LEVELS, higher_level
from bot.settings import Settings

logger = logging.getLogger(__name__)

ESCALATION_LEVEL_SLOT = "escalation_level"


@lru_cache(maxsize=1)
def escalation_recorder() -> EscalationRecorder:
    """The action server's recorder (spool first, then the database), built on first use."""
    settings = Settings.from_env()
    return EscalationRecorder.from_config(settings.escalation, settings.escalation_spool_dir)


def _higher_level(current: Optional[Text], new: Text) -> Text:
    return higher_level(str(current), new) if current in LEVELS else new


class ActionEscalateToClinician(Action):
    """Keeps the escalation level slot in step with the risk the Rasa server has recorded."""

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_escalate_to_clinician"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        """Sets `escalation_level` to the highest level so far; the record exists already."""
        turn = decision.latest_turn(tracker.events)
        if turn is None:
            return []
        level = _higher_level(tracker.get_slot(ESCALATION_LEVEL_SLOT), decision.risk_level(turn))
        return [SlotSet(ESCALATION_LEVEL_SLOT, level)]


class ActionRequestCareTeam(Action):
    """Keeps the escalation level slot in step with a request for a person (low priority)."""

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_request_care_team"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        """Sets `escalation_level` to low unless a risk made it higher."""
        return [SlotSet(ESCALATION_LEVEL_SLOT, _higher_level(tracker.get_slot(ESCALATION_LEVEL_SLOT), decision.LOW))]


class ActionRecordContact(Action):
    """Stores how the person asked to be contacted, only in answer to the assistant's request."""

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_record_contact"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        """Records a phone number or email given after consent; sets `contact_outcome` either way."""
        if not decision.contact_consented(tracker.events):
            # The rules only run this after the request; a number given at any other moment is not kept.
            return [SlotSet(decision.CONTACT_OUTCOME_SLOT, decision.CONTACT_NOT_ASKED)]
        detail = contact_detail(tracker.latest_message.get("text"))
        if detail is None:
            return [SlotSet(decision.CONTACT_OUTCOME_SLOT, decision.CONTACT_UNREADABLE)]
        method, value = detail
        outcome = await _durably(escalation_recorder().record_contact, tracker.sender_id, method, value)
        saved = decision.CONTACT_SAVED if outcome else decision.CONTACT_FAILED
        return [SlotSet(decision.CONTACT_OUTCOME_SLOT, saved)]


class ActionWithdrawContact(Action):
    """Records that the person no longer wants to be contacted."""

    def name(self) -> Text:
        """Unique identifier of the action."""
        return "action_withdraw_contact"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        """Withdraws the conversation's contact details; sets `contact_outcome`."""
        outcome = await _durably(escalation_recorder().withdraw_contact, tracker.sender_id)
        withdrawn = decision.CONTACT_WITHDRAWN if outcome else decision.CONTACT_FAILED
        return [SlotSet(decision.CONTACT_OUTCOME_SLOT, withdrawn)]


async def _durably(write: Any, *args: Any) -> bool:
    """Runs a recorder write off the event loop; True once it is durable (spool or database)."""
    try:
        outcome = await asyncio.to_thread(write, *args)
    except Exception:  # noqa: BLE001  # the person is told it was not passed on
        logger.exception("A contact change could not be recorded, not even to the spool.")
        return False
    return bool(getattr(outcome, "durable", False))
