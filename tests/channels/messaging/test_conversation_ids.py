"""Each channel's conversations belong to it, through a real Rasa server.

A message from each messaging channel lands in `<prefix>:<platform id>`, the
reply goes to the bare platform id, and the REST channel can neither write
into that conversation (a 400) nor reach it by the bare id (that is another,
REST-only conversation).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable, List

import pytest

from .conftest import RunningChannels
from .fake_platform import PlatformCall
from .test_messenger_webhook import new_psid, page_event, signed
from .test_messenger_webhook import post as post_messenger
from .test_slack_webhook import message_event, new_user, post_json, wait_for_reply
from .test_telegram_webhook import message_update, new_chat_id, post_update, sent_to
from .test_twilio_webhook import SMS, WHATSAPP, new_phone, post_message
from .test_twilio_webhook import sent_to as twilio_sent_to

pytestmark = pytest.mark.e2e

REST = "/webhooks/rest/webhook"
QUESTION = "what is ptsd"


@dataclass
class Person:
    """Someone on a messaging channel: their conversation id and what reached them on the platform."""

    conversation_id: str
    platform_id: str
    replies: Callable[[], List[PlatformCall]]


def telegram(channels: RunningChannels) -> Person:
    chat_id = new_chat_id()
    assert post_update(channels, message_update(chat_id, QUESTION)) == 200
    return Person(f"telegram:{chat_id}", str(chat_id), lambda: sent_to(channels, chat_id))


def slack(channels: RunningChannels) -> Person:
    user, channel = new_user()
    assert post_json(channels, message_event(user, channel, QUESTION)) == 200
    wait_for_reply(channels, channel, "Post-traumatic stress disorder")
    # Slack replies go to the channel of the message (a DM), which names the person's DM with the app.
    return Person(
        f"slack:{user}",
        user,
        lambda: channels.platform.calls_where(
            lambda c: c.platform == "slack" and c.method == "chat.postMessage" and c.body.get("channel") == channel
        ),
    )


def sms(channels: RunningChannels) -> Person:
    phone = new_phone()
    assert post_message(channels, phone, QUESTION) == 204
    return Person(f"twilio:{phone}", phone, lambda: twilio_sent_to(channels, phone))


def whatsapp(channels: RunningChannels) -> Person:
    address = new_phone(whatsapp=True)
    assert post_message(channels, address, QUESTION, channel=WHATSAPP) == 204
    # Twilio addresses the person as whatsapp:+1555...: the conversation id is that address.
    return Person(address, address.split(":", 1)[1], lambda: twilio_sent_to(channels, address))


def messenger(channels: RunningChannels) -> Person:
    psid = new_psid()
    body = page_event(psid, {"text": QUESTION})
    assert post_messenger(channels, body, signed(body)) == 200
    return Person(
        f"facebook:{psid}",
        psid,
        lambda: channels.platform.calls_where(
            lambda c: c.platform == "facebook" and c.body.get("recipient", {}).get("id") == psid and "message" in c.body
        ),
    )


CHANNELS = {"telegram": telegram, "slack": slack, "sms": sms, "whatsapp": whatsapp, "messenger": messenger}


def rest(channels: RunningChannels, sender: str, message: str = "/restart") -> tuple[int, object]:
    body = json.dumps({"sender": sender, "message": message}).encode()
    status, answer = channels.post(REST, body, {"Content-Type": "application/json"})
    return status, json.loads(answer)


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_message_lands_in_the_channels_conversation_and_the_reply_reaches_the_platform_id(
    channels: RunningChannels, channel: str
) -> None:
    person = CHANNELS[channel](channels)
    assert channels.user_texts(person.conversation_id) == [QUESTION]
    assert channels.bot_actions(person.conversation_id)[-1] == "utter_faq/what_is_ptsd"
    assert any("Post-traumatic stress disorder" in json.dumps(call.body) for call in person.replies())
    assert not channels.conversation_exists(person.platform_id)


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_the_rest_channel_cannot_write_into_another_channels_conversation(
    channels: RunningChannels, channel: str
) -> None:
    person = CHANNELS[channel](channels)
    before = channels.events(person.conversation_id)
    replies_before = len(person.replies())

    for sender in (person.conversation_id, person.conversation_id.upper(), f" {person.conversation_id}"):
        status, answer = rest(channels, sender)
        assert status == 400
        assert isinstance(answer, dict) and "belong to other channels" in answer["error"]
    # The bare platform id is an unrelated REST conversation: the person's is untouched.
    status, answer = rest(channels, person.platform_id, "hello")
    assert status == 200 and answer
    assert channels.user_texts(person.platform_id) == ["hello"]
    assert channels.events(person.conversation_id) == before
    assert len(person.replies()) == replies_before


def test_a_rest_conversation_keeps_the_sender_its_caller_gave(channels: RunningChannels) -> None:
    sender = f"api-client-{random.randint(0, 10**9)}"
    status, answer = rest(channels, sender, QUESTION)
    assert status == 200 and answer
    assert channels.user_texts(sender) == [QUESTION]
    assert [e["input_channel"] for e in channels.events(sender) if e["event"] == "user"] == ["rest"]


def test_sms_and_whatsapp_from_one_number_are_two_conversations(channels: RunningChannels) -> None:
    phone = new_phone()
    assert post_message(channels, phone, QUESTION) == 204
    assert post_message(channels, f"whatsapp:{phone}", "hello", channel=WHATSAPP) == 204
    assert channels.user_texts(f"twilio:{phone}") == [QUESTION]
    assert channels.user_texts(f"whatsapp:{phone}") == ["hello"]
    assert SMS[2] != WHATSAPP[2]
