"""Telegram updates through a real Rasa server; replies captured by the fake Bot API."""

from __future__ import annotations

import json
import random
import time
from typing import Any, Dict, List, Optional

import pytest

from .conftest import CHANNEL_ENV, RunningChannels
from .fake_platform import PlatformCall

pytestmark = pytest.mark.e2e

WEBHOOK = "/webhooks/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def new_chat_id() -> int:
    return random.randint(10_000_000, 99_999_999)


def message_update(chat_id: int, text: str) -> Dict[str, Any]:
    person = {"id": chat_id, "is_bot": False, "first_name": "Sam", "language_code": "en"}
    return {
        "update_id": random.randint(1, 10**9),
        "message": {
            "message_id": random.randint(1, 10**6),
            "from": person,
            "chat": {"id": chat_id, "first_name": "Sam", "type": "private"},
            "date": int(time.time()),
            "text": text,
        },
    }


def button_update(chat_id: int, data: str) -> Dict[str, Any]:
    bot = {"id": 7012345678, "is_bot": True, "first_name": "Test", "username": CHANNEL_ENV["TELEGRAM_BOT_NAME"]}
    return {
        "update_id": random.randint(1, 10**9),
        "callback_query": {
            "id": str(random.randint(1, 10**12)),
            "from": {"id": chat_id, "is_bot": False, "first_name": "Sam"},
            "message": {
                "message_id": random.randint(1, 10**6),
                "from": bot,
                "chat": {"id": chat_id, "first_name": "Sam", "type": "private"},
                "date": int(time.time()),
                "text": "Earlier answer",
            },
            "chat_instance": "-5550001",
            "data": data,
        },
    }


def post_update(
    channels: RunningChannels, update: Dict[str, Any], secret: Optional[str] = CHANNEL_ENV["TELEGRAM_SECRET_TOKEN"]
) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    status, _ = channels.post(WEBHOOK, json.dumps(update).encode(), headers)
    return status


def sent_to(channels: RunningChannels, chat_id: int) -> List[PlatformCall]:
    return channels.platform.calls_where(
        lambda c: c.platform == "telegram" and c.method == "sendMessage" and c.body.get("chat_id") == str(chat_id)
    )


def test_the_webhook_is_registered_with_the_secret_token(channels: RunningChannels) -> None:
    calls = channels.platform.wait_for(bool, lambda c: c.platform == "telegram" and c.method == "setWebhook")
    assert calls, "setWebhook was called at start-up"
    assert calls[0].body == {
        "url": CHANNEL_ENV["TELEGRAM_WEBHOOK_URL"],
        "secret_token": CHANNEL_ENV["TELEGRAM_SECRET_TOKEN"],
    }
    assert CHANNEL_ENV["TELEGRAM_ACCESS_TOKEN"] in calls[0].path


def test_a_question_gets_the_faq_answer_with_buttons(channels: RunningChannels) -> None:
    chat_id = new_chat_id()
    assert post_update(channels, message_update(chat_id, "is mdma therapy legal?")) == 200
    replies = sent_to(channels, chat_id)
    texts = [call.body["text"] for call in replies]
    assert any("automated assistant" in text for text in texts)
    answer = next(call for call in replies if "not an approved treatment" in call.body["text"])
    keyboard = json.loads(answer.body["reply_markup"])["inline_keyboard"]
    assert keyboard == [
        [{"text": "What Breakthrough Therapy means", "callback_data": "/faq/breakthrough_therapy_designation"}],
        [{"text": "How to access it today", "callback_data": "/faq/availability"}],
    ]
    assert channels.bot_actions(f"telegram:{chat_id}")[-1] == "utter_faq/legal_status"


def test_a_button_press_answers_the_chosen_topic(channels: RunningChannels) -> None:
    chat_id = new_chat_id()
    assert post_update(channels, message_update(chat_id, "hello")) == 200
    assert post_update(channels, button_update(chat_id, "/faq/availability")) == 200
    assert channels.bot_actions(f"telegram:{chat_id}")[-1] == "utter_faq/availability"
    assert channels.user_texts(f"telegram:{chat_id}")[-1] == "/faq/availability"
    assert len(sent_to(channels, chat_id)) >= 2


@pytest.mark.parametrize(
    "secret",
    [None, "", "wrong-secret", CHANNEL_ENV["TELEGRAM_SECRET_TOKEN"] + "x"],
    ids=["missing", "empty", "wrong", "longer"],
)
def test_updates_without_the_secret_token_are_refused(channels: RunningChannels, secret: Optional[str]) -> None:
    refused = new_chat_id()
    assert post_update(channels, message_update(refused, "is mdma therapy legal?"), secret=secret) == 403
    # A genuine update afterwards is answered, and the refused one left no trace.
    accepted = new_chat_id()
    assert post_update(channels, message_update(accepted, "what is ptsd")) == 200
    assert sent_to(channels, accepted)
    assert channels.conversation_exists(f"telegram:{accepted}")
    assert not channels.conversation_exists(f"telegram:{refused}")
    assert sent_to(channels, refused) == []
