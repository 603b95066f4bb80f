"""Numbered choices: how they are written, and which reply picks which button."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.channels.messaging.choices import chosen_payload, numbered_choices, offered_buttons, resolve_numbered_reply

BUTTONS = [
    {"title": "What Breakthrough Therapy means", "payload": "/faq/breakthrough_therapy_designation"},
    {"title": "How to access it today", "payload": "/faq/availability"},
]


def test_numbered_choices_are_one_line_each_from_1() -> None:
    assert numbered_choices(BUTTONS) == "1. What Breakthrough Therapy means\n2. How to access it today"


@pytest.mark.parametrize(
    ("reply", "payload"),
    [
        ("1", "/faq/breakthrough_therapy_designation"),
        ("2", "/faq/availability"),
        (" 2 ", "/faq/availability"),
        ("2.", "/faq/availability"),
        ("2)", "/faq/availability"),
        ("#2", "/faq/availability"),
        ("0", None),
        ("3", None),
        ("12", None),
        ("two", None),
        ("2 please", None),
        ("", None),
    ],
)
def test_chosen_payload(reply: str, payload: Optional[str]) -> None:
    assert chosen_payload(reply, BUTTONS) == payload


def store_with(sender: str, events: List[Any]) -> InMemoryTrackerStore:
    domain = Domain.empty()
    store = InMemoryTrackerStore(domain)
    asyncio.run(store.save(DialogueStateTracker.from_events(sender, events)))
    return store


def bot(text: str, buttons: Optional[List[Dict[str, str]]] = None) -> BotUttered:
    return BotUttered(text, data={"buttons": buttons} if buttons else {})


def test_the_last_message_with_buttons_since_the_person_wrote_is_used() -> None:
    store = store_with(
        "+15550001",
        [
            ActionExecuted("action_listen"),
            UserUttered("is mdma therapy legal?"),
            bot("intro"),
            bot("answer", BUTTONS),
            ActionExecuted("action_listen"),
        ],
    )
    assert asyncio.run(offered_buttons(store, "+15550001")) == BUTTONS
    assert asyncio.run(resolve_numbered_reply(store, "+15550001", "2")) == "/faq/availability"


def test_choices_from_an_earlier_turn_are_not_used() -> None:
    store = store_with(
        "+15550002",
        [UserUttered("is it legal?"), bot("answer", BUTTONS), UserUttered("thanks"), bot("You're welcome.")],
    )
    assert asyncio.run(offered_buttons(store, "+15550002")) == []
    assert asyncio.run(resolve_numbered_reply(store, "+15550002", "2")) == "2"


def test_quick_replies_count_as_choices() -> None:
    store = store_with("+15550003", [UserUttered("hi"), BotUttered("pick", data={"quick_replies": BUTTONS})])
    assert asyncio.run(resolve_numbered_reply(store, "+15550003", "1")) == "/faq/breakthrough_therapy_designation"


@pytest.mark.parametrize("text", ["3", "what is ptsd", "2 more questions"])
def test_other_replies_pass_through(text: str) -> None:
    store = store_with("+15550004", [UserUttered("hi"), bot("answer", BUTTONS)])
    assert asyncio.run(resolve_numbered_reply(store, "+15550004", text)) == text


def test_an_unknown_conversation_or_no_store_passes_through() -> None:
    store = InMemoryTrackerStore(Domain.empty())
    assert asyncio.run(resolve_numbered_reply(store, "+15559999", "1")) == "1"
    assert asyncio.run(resolve_numbered_reply(None, "+15559999", "1")) == "1"
