"""Conversations as Rasa's JSON events, the form both the Rasa server and rasa-sdk hand to our code."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence

from rasa_sdk import Tracker

_clock = itertools.count()
Event = Dict[str, Any]


def _timestamp() -> float:
    return time.time() + next(_clock) / 1000


def user(
    text: str,
    intent: str,
    *,
    level: Optional[str] = None,
    category: Optional[str] = None,
    message_id: Optional[str] = None,
    channel: str = "rest",
) -> Event:
    """A user message as the NLU pipeline left it (the safety screen's entities included)."""
    entities = []
    if level:
        entities.append({"entity": "risk_level", "value": level})
    if category:
        entities.append({"entity": "risk_category", "value": category})
    return {
        "event": "user",
        "timestamp": _timestamp(),
        "text": text,
        "parse_data": {"text": text, "intent": {"name": intent, "confidence": 1.0}, "entities": entities},
        "input_channel": channel,
        "message_id": message_id or uuid.uuid4().hex,
    }


def action(name: str) -> Event:
    return {"event": "action", "timestamp": _timestamp(), "name": name}


def bot(text: str, response: str) -> Event:
    return {"event": "bot", "timestamp": _timestamp(), "text": text, "metadata": {"utter_action": response}}


def slot(name: str, value: Any) -> Event:
    return {"event": "slot", "timestamp": _timestamp(), "name": name, "value": value}


def said(response: str, text: Optional[str] = None) -> List[Event]:
    """The events of one response action: the action, then its message."""
    return [action(response), bot(text or f"[{response}]", response)]


def listen() -> Event:
    return action("action_listen")


def crisis(text: str, level: str, category: str, *, message_id: Optional[str] = None) -> List[Event]:
    """A risk message, its crisis reply and status: the turn as the escalation action sees it."""
    reply = "utter_crisis" if level == "urgent" else "utter_crisis_priority"
    return [
        listen(),
        user(text, f"risk_{level}", level=level, category=category, message_id=message_id),
        *said(reply, "Please call 911 now, or call or text 988."),
        *said("utter_escalation_status"),
    ]


def risk_turn(text: str, level: str, category: str, *, message_id: Optional[str] = None) -> List[Event]:
    """A risk message and the whole turn the rules give it, up to the safety question."""
    return [
        *crisis(text, level, category, message_id=message_id),
        action("action_escalate_to_clinician"),
        *said("utter_ask_safe_now", "Are you safe right now?"),
    ]


def sdk_tracker(sender: str, events: Sequence[Event], slots: Optional[Dict[str, Any]] = None) -> Tracker:
    """The tracker rasa-sdk builds from the Rasa server's request."""
    latest = next((e for e in reversed(events) if e["event"] == "user"), None)
    latest_message = {**latest["parse_data"], "message_id": latest["message_id"]} if latest else {}
    return Tracker.from_dict(
        {
            "sender_id": sender,
            "slots": dict(slots or {}),
            "latest_message": latest_message,
            "events": list(events),
            "paused": False,
            "active_loop": {},
            "latest_action_name": "action_listen",
        }
    )
