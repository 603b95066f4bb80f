"""What the conversation decided: the escalation to record, and words that are honest about it.

Rasa 3.6 runs a custom action by calling the action server; when that server is
down, answers an error or times out, `MessageProcessor._run_action` logs that
the action's events are lost and the conversation goes on. An escalation
recorded by a custom action is lost with them, while the person has already
read the crisis reply. So the decision is recorded where it is made: in the
Rasa server, by the response generator, when it renders the crisis reply
(`InServerEscalations`). Rasa's `ActionBotResponse.run` awaits
`nlg.generate(response, tracker, ...)` with the turn's tracker and only then
returns the message, which the processor sends (socket, messaging apps) or
collects for the REST reply: a write finished inside `generate` precedes the
reply on every channel, and needs no other service. The action server only
completes the decision (slots, contact details).

Everything here reads the conversation as Rasa's JSON events (`event.as_dict()`
in the server, `tracker.events` in rasa-sdk), so the server and the action
server name a level, a category and a turn the same way.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from bot.escalation.config import EscalationConfig, destinations_configured
from bot.escalation.recorder import EscalationRecorder
from bot.escalation.records import (
    HUMAN_REQUEST_CATEGORY,
    LEVELS,
    UNSPECIFIED_CATEGORY,
    EscalationRequest,
    RecordOutcome,
    utc_now,
)

logger = logging.getLogger(__name__)

Event = Mapping[str, Any]

RISK = "risk"
HUMAN_REQUEST = "human_request"
URGENT, PRIORITY, LOW = LEVELS
RISK_INTENT_LEVELS = {"risk_urgent": URGENT, "risk_priority": PRIORITY}
TRANSCRIPT_MESSAGES = 60

# Responses (domain.yml) whose rendering is, or depends on, an escalation decision.
CRISIS_RESPONSES = ("utter_crisis", "utter_crisis_priority")
NOT_SAFE_RESPONSE = "utter_crisis_not_safe"
GLAD_SAFE_RESPONSE = "utter_glad_safe"
ASK_SAFE_RESPONSE = "utter_ask_safe_now"
REQUEST_HUMAN_RESPONSE = "utter_request_human"
STATUS_RESPONSE = "utter_escalation_status"
CONTACT_STATUS_RESPONSE = "utter_contact_status"
WITHDRAW_STATUS_RESPONSE = "utter_contact_withdraw_status"

# What a recorded decision lets the assistant say.
ALERTED = "alerted"  # recorded durably, and alerts go to at least one destination
SAVED = "saved"  # recorded durably, no alert destination: the team sees it in the console
UNRECORDED = "unrecorded"  # not even the spool could be written: no claim at all
STATUS_WORDING = {
    (RISK, ALERTED): "utter_escalation_alerted",
    (RISK, SAVED): "utter_escalation_saved",
    (RISK, UNRECORDED): "utter_escalation_not_recorded",
    (HUMAN_REQUEST, ALERTED): "utter_request_human_alerted",
    (HUMAN_REQUEST, SAVED): "utter_request_human_saved",
    (HUMAN_REQUEST, UNRECORDED): "utter_request_human_not_recorded",
}

# Contact: the action server's outcome (slot `contact_outcome`) and its words.
CONTACT_OUTCOME_SLOT = "contact_outcome"
CONTACT_SAVED = "saved"
CONTACT_FAILED = "failed"
CONTACT_NOT_ASKED = "not_asked"
CONTACT_UNREADABLE = "unreadable"
CONTACT_WITHDRAWN = "withdrawn"
CONTACT_WORDING = {
    CONTACT_SAVED: "utter_contact_saved",
    CONTACT_NOT_ASKED: "utter_contact_not_requested",
    CONTACT_UNREADABLE: "utter_ask_contact_detail_again",
}
CONTACT_NOT_SAVED_WORDING = "utter_contact_not_saved"
WITHDRAW_WORDING = {CONTACT_WITHDRAWN: "utter_contact_withdrawn"}
WITHDRAW_FAILED_WORDING = "utter_contact_withdraw_failed"
# The assistant asked for a phone number or email (consent given), or just saved one (a correction).
CONTACT_PROMPTS = ("utter_ask_contact_detail", "utter_ask_contact_detail_again", CONTACT_STATUS_RESPONSE)

# "Are you safe right now?": only a clear yes counts as safe. Any other word
# ("kind of", "I think so", "yes but...", "idk") and the escalation becomes urgent.
AFFIRM_PAYLOAD = "/affirm"
_CLEAR_YES_WORDS = frozenset(
    "yes yeah yea yep yup ya y ok okay i im i'm am safe right now totally definitely absolutely "
    "fine alright all good really thanks thank you at the moment currently sure of course correct that's "
    "indeed".split()
)
_YES_WORDS = frozenset("yes yeah yea yep yup ya y safe ok okay fine alright sure course correct indeed".split())
_WORD = re.compile(r"[a-z']+")


def is_clear_yes(text: Optional[str]) -> bool:
    """Whether an answer to "Are you safe right now?" is a plain yes, with no hedge or extra thought."""
    if not text:
        return False
    cleaned = text.strip().lower().replace("\u2019", "'")
    if cleaned == AFFIRM_PAYLOAD:
        return True
    if re.search(r"[^a-z'\s.,!]", cleaned):
        return False  # digits, question marks, emoji: not a plain yes
    words = _WORD.findall(cleaned)
    return bool(words) and set(words) <= _CLEAR_YES_WORDS and bool(_YES_WORDS & set(words))


@dataclass(frozen=True)
class Turn:
    """The latest user message of a conversation, as the dialogue saw it."""

    id: str
    text: str
    intent: Optional[str]
    entities: Tuple[Mapping[str, Any], ...]
    previous_action: Optional[str]
    index: int

    def entity(self, name: str) -> Optional[str]:
        """The value of the first entity called `name`."""
        for entity in self.entities:
            if entity.get("entity") == name and entity.get("value"):
                return str(entity["value"])
        return None


def latest_turn(events: Sequence[Event]) -> Optional[Turn]:
    """The latest user message with the bot action it answered; None before the first message."""
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event.get("event") != "user":
            continue
        parse_data = event.get("parse_data") or {}
        intent = (parse_data.get("intent") or {}).get("name")
        return Turn(
            id=str(event.get("message_id") or f"event-{index}"),
            text=str(event.get("text") or ""),
            intent=intent,
            entities=tuple(parse_data.get("entities") or ()),
            previous_action=_previous_action(events, index),
            index=index,
        )
    return None


def _previous_action(events: Sequence[Event], before: int) -> Optional[str]:
    for event in reversed(events[:before]):
        if event.get("event") == "action" and event.get("name") not in ("action_listen", None):
            return str(event["name"])
        if event.get("event") == "user":
            return None
    return None


def events_since_latest_user_message(events: Sequence[Event]) -> Sequence[Event]:
    """What happened in this turn so far."""
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") == "user":
            return events[index + 1 :]
    return events


def unsure_about_safety(turn: Turn) -> bool:
    """Whether this message answered "Are you safe right now?" with anything but a clear yes."""
    return turn.previous_action == ASK_SAFE_RESPONSE and not (turn.intent == "affirm" and is_clear_yes(turn.text))


def risk_level(turn: Turn) -> str:
    """The level of a risk message: the safety screen's, else its intent's; urgent if safety is in doubt."""
    if unsure_about_safety(turn):
        return URGENT
    level = turn.entity("risk_level") or RISK_INTENT_LEVELS.get(turn.intent or "", PRIORITY)
    return level if level in LEVELS else PRIORITY


def risk_category(events: Sequence[Event]) -> str:
    """The category of the latest message the safety screen flagged, else "unspecified"."""
    for event in reversed(events):
        if event.get("event") != "user":
            continue
        for entity in (event.get("parse_data") or {}).get("entities") or ():
            if entity.get("entity") == "risk_category" and entity.get("value"):
                return str(entity["value"])
    return UNSPECIFIED_CATEGORY


def transcript(events: Sequence[Event], messages: int = TRANSCRIPT_MESSAGES) -> List[Dict[str, Any]]:
    """The last user and bot messages, for the console only (alerts never carry them)."""
    turns = [
        {"sender": event["event"], "text": event["text"], "timestamp": float(event.get("timestamp") or 0.0)}
        for event in events
        if event.get("event") in ("user", "bot") and event.get("text")
    ]
    return turns[-messages:]


def escalation_request(
    conversation_id: str,
    channel: Optional[str],
    events: Sequence[Event],
    kind: str,
    level: str,
    category: str,
) -> Optional[EscalationRequest]:
    """The record of one decision, keyed by the user turn that led to it; None before any message."""
    turn = latest_turn(events)
    if turn is None:
        return None
    return EscalationRequest(
        conversation_id=conversation_id,
        channel=channel or "unknown",
        kind=kind,
        level=level,
        category=category,
        turn=turn.id,
        transcript=transcript(events),
        decided_at=utc_now(),
    )


def decision_for(
    response: str, conversation_id: str, channel: Optional[str], events: Sequence[Event]
) -> Optional[EscalationRequest]:
    """The escalation that rendering `response` now means, if any.

    - a crisis reply: a risk at the message's level (urgent when the message
      answered "Are you safe right now?" with anything but a clear yes);
    - the not-safe reply, or "glad you're safe" after anything but a clear yes:
      the conversation's escalation becomes urgent (the store updates it);
    - the answer to a request for a person: a low-priority request.
    """
    turn = latest_turn(events)
    if turn is None:
        return None
    if response in CRISIS_RESPONSES:
        return escalation_request(conversation_id, channel, events, RISK, risk_level(turn), risk_category(events))
    if response == NOT_SAFE_RESPONSE or (response == GLAD_SAFE_RESPONSE and unsure_about_safety(turn)):
        return escalation_request(conversation_id, channel, events, RISK, URGENT, risk_category(events))
    if response == REQUEST_HUMAN_RESPONSE:
        return escalation_request(conversation_id, channel, events, HUMAN_REQUEST, LOW, HUMAN_REQUEST_CATEGORY)
    return None


def wording_state(outcome: Optional[RecordOutcome], destinations_configured: bool) -> str:
    """What the assistant may say about a decision: alerted, saved for the console, or nothing."""
    if outcome is None or not outcome.durable:
        return UNRECORDED
    return ALERTED if destinations_configured else SAVED


def contact_outcome(events: Sequence[Event]) -> Optional[str]:
    """The contact action's outcome in this turn; None if it did not run (or its events were lost)."""
    outcome = None
    for event in events_since_latest_user_message(events):
        if event.get("event") == "slot" and event.get("name") == CONTACT_OUTCOME_SLOT:
            outcome = event.get("value")
    return outcome


def contact_consented(events: Sequence[Event]) -> bool:
    """Whether the latest message answers the assistant's request for a phone number or email."""
    turn = latest_turn(events)
    return turn is not None and turn.previous_action in CONTACT_PROMPTS


class InServerEscalations:
    """Records escalation decisions inside the Rasa server while their responses are rendered.

    `render(response, ...)` is called by the response generator for every
    response it renders. For a decision response it writes the decision
    durably (the recorder's spool first, fsynced, then the database) on a
    worker thread, waits for that write, and only then returns the message,
    so a reply never goes out before its record exists. Status responses
    then say what is true: alerted, saved for the console, or nothing.
    Recording is idempotent per (conversation, turn): rendering the same
    decision twice in a turn writes it once.
    """

    HANDLED = frozenset(
        (
            *CRISIS_RESPONSES,
            NOT_SAFE_RESPONSE,
            GLAD_SAFE_RESPONSE,
            REQUEST_HUMAN_RESPONSE,
            STATUS_RESPONSE,
            CONTACT_STATUS_RESPONSE,
            WITHDRAW_STATUS_RESPONSE,
        )
    )
    REMEMBERED_OUTCOMES = 2048

    def __init__(self, recorder: EscalationRecorder, destinations_configured: bool) -> None:
        """`recorder` writes the decisions; `destinations_configured` says whether alerts go anywhere."""
        self.recorder = recorder
        self.destinations_configured = destinations_configured
        self._outcomes: "OrderedDict[Tuple[str, str], Tuple[str, Optional[RecordOutcome]]]" = OrderedDict()
        if not destinations_configured:
            logger.warning(
                "No alert destination is configured (ESCALATION_WEBHOOK_URL or SMTP_*): escalations are "
                "recorded for the console, and the assistant says so instead of saying the team was alerted."
            )

    @classmethod
    def from_config(cls, config: EscalationConfig, spool_dir: Path) -> "InServerEscalations":
        """Records through the project's recorder (spool in `spool_dir`, then the configured database)."""
        return cls(EscalationRecorder.from_config(config, spool_dir), destinations_configured(config))

    def handles(self, response: str) -> bool:
        """Whether rendering `response` involves an escalation decision or its outcome."""
        return response in self.HANDLED

    async def render(
        self,
        response: str,
        conversation_id: str,
        channel: Optional[str],
        events: Sequence[Event],
        generate: Callable[[str], Any],
    ) -> Optional[Dict[str, Any]]:
        """Records the decision `response` stands for (if any), then renders the honest message."""
        if response == STATUS_RESPONSE:
            return await generate(self._status_wording(conversation_id, events, RISK))
        if response == CONTACT_STATUS_RESPONSE:
            outcome = contact_outcome(events)
            return await generate(CONTACT_WORDING.get(outcome or "", CONTACT_NOT_SAVED_WORDING))
        if response == WITHDRAW_STATUS_RESPONSE:
            return await generate(WITHDRAW_WORDING.get(contact_outcome(events) or "", WITHDRAW_FAILED_WORDING))
        request = decision_for(response, conversation_id, channel, events)
        if request is not None:
            await self.record(request)
        if response == REQUEST_HUMAN_RESPONSE:
            return await generate(self._status_wording(conversation_id, events, HUMAN_REQUEST))
        if response == GLAD_SAFE_RESPONSE and request is not None:
            return await self._not_safe_after_all(conversation_id, events, generate)
        return await generate(response)

    async def record(self, request: EscalationRequest) -> Optional[RecordOutcome]:
        """Writes the decision durably off the event loop, once per (conversation, turn, kind)."""
        key = (request.conversation_id, request.turn)
        remembered = self._outcomes.get(key)
        if remembered is not None and remembered[0] == request.kind and remembered[1] and remembered[1].durable:
            return remembered[1]
        try:
            outcome: Optional[RecordOutcome] = await asyncio.to_thread(self.recorder.record, request)
        except Exception:  # noqa: BLE001  # even the spool failed: the reply must still go out, with no claim
            logger.critical(
                "ESCALATION NOT RECORDED: a %s %s escalation could not be written, not even to the spool. "
                "Check the spool folder and the escalation database now.",
                request.level,
                request.kind,
                exc_info=True,
            )
            outcome = None
        if outcome is not None and not outcome.durable:
            logger.critical(
                "ESCALATION NOT RECORDED: a %s %s escalation could not be written, not even to the spool.",
                request.level,
                request.kind,
            )
        self._remember(key, request.kind, outcome)
        return outcome

    def _remember(self, key: Tuple[str, str], kind: str, outcome: Optional[RecordOutcome]) -> None:
        self._outcomes[key] = (kind, outcome)
        self._outcomes.move_to_end(key)
        while len(self._outcomes) > self.REMEMBERED_OUTCOMES:
            self._outcomes.popitem(last=False)

    def outcome_of_turn(self, conversation_id: str, events: Sequence[Event], kind: str) -> Optional[RecordOutcome]:
        """The outcome of this turn's decision of `kind`; None if none was recorded."""
        turn = latest_turn(events)
        if turn is None:
            return None
        remembered = self._outcomes.get((conversation_id, turn.id))
        if remembered is None or remembered[0] != kind:
            return None
        return remembered[1]

    def _status_wording(self, conversation_id: str, events: Sequence[Event], kind: str) -> str:
        outcome = self.outcome_of_turn(conversation_id, events, kind)
        return STATUS_WORDING[(kind, wording_state(outcome, self.destinations_configured))]

    async def _not_safe_after_all(
        self, conversation_id: str, events: Sequence[Event], generate: Callable[[str], Any]
    ) -> Optional[Dict[str, Any]]:
        """The not-safe reply and its status in one message, for a "yes" that was not a clear yes."""
        reply = await generate(NOT_SAFE_RESPONSE)
        status = await generate(self._status_wording(conversation_id, events, RISK))
        if reply is None:
            return status
        if status is not None and status.get("text"):
            reply["text"] = f"{reply.get('text') or ''}\n\n{status['text']}".strip()
        return reply
