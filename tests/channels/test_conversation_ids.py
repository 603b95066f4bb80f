"""Conversation ids per channel: one definition of the prefixes, and which REST senders they rule out."""

from __future__ import annotations

import pytest

from bot.channels.conversation_ids import BY_CHANNEL, RESERVED_PREFIXES, TELEGRAM, TWILIO_WHATSAPP, is_reserved


def test_every_channel_but_rest_has_its_own_prefix() -> None:
    assert set(BY_CHANNEL) == {"twilio", "twilio_whatsapp", "telegram", "slack", "facebook", "socketio"}
    prefixes = [ids.prefix for ids in BY_CHANNEL.values()]
    assert len(set(prefixes)) == len(prefixes)
    assert RESERVED_PREFIXES == ("facebook:", "slack:", "telegram:", "twilio:", "web:", "whatsapp:")


def test_ids_round_trip() -> None:
    assert TELEGRAM.conversation_id(123456) == "telegram:123456"
    assert TELEGRAM.platform_id("telegram:123456") == "123456"
    assert TWILIO_WHATSAPP.platform_id("whatsapp:+15551234567") == "+15551234567"
    # Conversations from before the prefixes keep working.
    assert TELEGRAM.platform_id("123456") == "123456"
    # Only the channel's own prefix is stripped, and only once.
    assert TELEGRAM.platform_id("slack:U1") == "slack:U1"
    assert TELEGRAM.platform_id("telegram:telegram:1") == "telegram:1"


@pytest.mark.parametrize(
    ("sender", "reserved"),
    [
        ("telegram:123", True),
        ("twilio:+15551234567", True),
        ("whatsapp:+15551234567", True),
        ("slack:U0123", True),
        ("facebook:2450001", True),
        ("web:0123456789abcdef0123456789abcdef", True),
        ("Telegram:123", True),
        ("  WEB:abc", True),
        ("telegram", False),
        ("123", False),
        ("+15551234567", False),
        ("demo-1", False),
        ("my-telegram:1", False),
        ("rest:1", False),
    ],
)
def test_reserved_senders(sender: str, reserved: bool) -> None:
    assert is_reserved(sender) is reserved
