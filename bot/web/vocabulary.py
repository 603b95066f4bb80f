"""The words the console page shows for levels, statuses, categories...: values from the store, labels here.

The page fetches these from /api/vocabulary instead of keeping its own copy,
so a level or category added to bot.escalation.store appears in the console's
filters without touching the script (with its value as the label until one is
written here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.escalation.store import (
    CONTACT_METHODS,
    HUMAN_REQUEST_CATEGORY,
    KINDS,
    LEVELS,
    RISK_CATEGORIES,
    SENDERS,
    STATUSES,
)

ALL_STATUSES = "all"
CATEGORIES = (*RISK_CATEGORIES, HUMAN_REQUEST_CATEGORY)
# Audit trail actions written by the store and shown in an escalation's history.
EVENT_ACTIONS = (
    "created",
    "acknowledged",
    "resolved",
    "contact_recorded",
    "delivered",
    "dead_lettered",
    "reminder_queued",
)

LABELS: Mapping[str, Mapping[str, str]] = {
    "levels": {"urgent": "Urgent", "priority": "Priority", "low": "Low"},
    "statuses": {
        "open": "Open",
        "acknowledged": "Acknowledged",
        "resolved": "Resolved",
        ALL_STATUSES: "All",
    },
    "categories": {
        "suicide": "Suicide risk",
        "self_harm": "Self-harm",
        "harm_to_others": "Harm to others",
        "medical_emergency": "Medical emergency",
        "acute_crisis": "Acute crisis",
        "abuse_danger": "Abuse or danger",
        "unspecified": "Risk (unspecified)",
        HUMAN_REQUEST_CATEGORY: "Asked to talk to a person",
    },
    "kinds": {"risk": "Risk detected", "human_request": "Request to talk to a person"},
    "senders": {"user": "Person", "bot": "Assistant"},
    "contact_methods": {"phone": "Phone", "email": "E-mail"},
    "actions": {
        "created": "Raised",
        "acknowledged": "Acknowledged",
        "resolved": "Resolved",
        "contact_recorded": "Contact details recorded",
        "delivered": "Alert delivered",
        "dead_lettered": "Alert could not be delivered",
        "reminder_queued": "Reminder sent",
    },
}

VALUES: Mapping[str, tuple[str, ...]] = {
    "levels": LEVELS,
    "statuses": (*STATUSES, ALL_STATUSES),
    "categories": CATEGORIES,
    "kinds": KINDS,
    "senders": SENDERS,
    "contact_methods": CONTACT_METHODS,
    "actions": EVENT_ACTIONS,
}


def _terms(name: str, values: Iterable[str]) -> list[dict[str, str]]:
    labels = LABELS.get(name, {})
    return [{"value": value, "label": labels.get(value) or value.replace("_", " ").capitalize()} for value in values]


def _channel_terms(channels: Iterable[str]) -> list[dict[str, str]]:
    # Channel names are the input channels' own names (socketio, rest...): shown as they are.
    return [{"value": channel, "label": channel} for channel in channels]


def vocabulary(channels: Iterable[str], limits: Mapping[str, int]) -> dict[str, Any]:
    """Return every list the page shows, in display order, with the limits it enforces.

    Args:
        channels: The chat channels escalations have come from (they are not a fixed list).
        limits: Sizes the API accepts (note length, page size...), so the page need not repeat them.
    """
    body: dict[str, Any] = {name: _terms(name, values) for name, values in VALUES.items()}
    body["channels"] = _channel_terms(channels)
    body["limits"] = dict(limits)
    return body
