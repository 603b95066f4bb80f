"""Buttons as numbered text choices, and a reply with a number as the choice it names.

On channels without buttons (SMS, WhatsApp) the choices are written as
"1. Title" lines. When the person answers "2", the second choice's payload is
sent to Rasa instead, just as if they had pressed the button. The choices
offered are read from the conversation's tracker, so they survive a restart
of the server when the tracker store is persistent.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Sequence

from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.events import BotUttered, UserUttered
from sanic.request import Request

logger = logging.getLogger(__name__)

# Matched against stripped text: no leading or trailing whitespace runs to backtrack over.
_NUMBER_REPLY = re.compile(r"#?[ \t]{0,3}(\d{1,2})[ \t]{0,3}[.)]?")


def numbered_choices(buttons: Sequence[Dict[str, Any]]) -> str:
    """The buttons as "1. Title" lines, in the order they were offered."""
    return "\n".join(f"{index}. {button.get('title', '')}" for index, button in enumerate(buttons, start=1))


def chosen_payload(text: str, buttons: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The payload of the button a number reply names, or None if the reply is not such a number."""
    match = _NUMBER_REPLY.fullmatch((text or "").strip())
    if not match:
        return None
    index = int(match.group(1)) - 1
    if 0 <= index < len(buttons):
        payload = buttons[index].get("payload")
        return payload if isinstance(payload, str) and payload else None
    return None


def looks_like_a_choice(text: Optional[str]) -> bool:
    """Whether `text` could name a numbered choice (so the tracker is worth reading)."""
    return bool(text) and _NUMBER_REPLY.fullmatch((text or "").strip()) is not None


def tracker_store_of(request: Request) -> Optional[TrackerStore]:
    """The Rasa server's tracker store, reached from a webhook request."""
    agent = getattr(request.app.ctx, "agent", None)
    return getattr(agent, "tracker_store", None)


async def offered_buttons(tracker_store: TrackerStore, sender_id: str) -> List[Dict[str, Any]]:
    """The buttons of the assistant's last message since the person last wrote, if it had any."""
    tracker = await tracker_store.retrieve(sender_id)
    if tracker is None:
        return []
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return []
        if isinstance(event, BotUttered):
            buttons = event.data.get("buttons") or event.data.get("quick_replies")
            if buttons:
                return list(buttons)
    return []


async def resolve_numbered_reply(tracker_store: Optional[TrackerStore], sender_id: str, text: str) -> str:
    """`text`, or the payload of the offered choice it names ("2" -> the second button's payload)."""
    if tracker_store is None or not looks_like_a_choice(text):
        return text
    payload = chosen_payload(text, await offered_buttons(tracker_store, sender_id))
    if payload is None:
        return text
    logger.debug("A numbered reply picked one of the offered choices.")
    return payload
