"""Twilio SMS and WhatsApp through a real Rasa server; replies captured by the fake Twilio API."""

from __future__ import annotations

import base64
import random
import urllib.parse
from typing import Dict, List

import pytest

from .conftest import CHANNEL_ENV, RunningChannels
from .fake_platform import PlatformCall
from .signing import twilio_signature

pytestmark = pytest.mark.e2e

SMS = ("/webhooks/twilio/webhook", CHANNEL_ENV["TWILIO_WEBHOOK_URL"], CHANNEL_ENV["TWILIO_NUMBER"])
WHATSAPP = (
    "/webhooks/twilio_whatsapp/webhook",
    CHANNEL_ENV["TWILIO_WHATSAPP_WEBHOOK_URL"],
    CHANNEL_ENV["TWILIO_WHATSAPP_NUMBER"],
)
LEGAL_CHOICES = "1. What Breakthrough Therapy means\n2. How to access it today"


def new_phone(whatsapp: bool = False) -> str:
    number = f"+1555{random.randint(0, 9_999_999):07d}"
    return f"whatsapp:{number}" if whatsapp else number


def inbound_params(sender: str, to: str, text: str) -> Dict[str, str]:
    """The form Twilio posts for an incoming message."""
    sid = "SM" + "".join(random.choice("0123456789abcdef") for _ in range(32))
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": text,
        "FromCountry": "US",
        "To": to,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": CHANNEL_ENV["TWILIO_ACCOUNT_SID"],
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def post_message(channels: RunningChannels, sender: str, text: str, channel: tuple[str, str, str] = SMS) -> int:
    """Posts an incoming message to the webhook, signed for the channel's public URL."""
    path, public_url, number = channel
    params = inbound_params(sender, number, text)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(CHANNEL_ENV["TWILIO_AUTH_TOKEN"], public_url, params),
    }
    status, _ = channels.post(path, urllib.parse.urlencode(params).encode(), headers)
    return status


def sent_to(channels: RunningChannels, recipient: str) -> List[PlatformCall]:
    return channels.platform.calls_where(lambda c: c.platform == "twilio" and c.body.get("To") == recipient)


def test_an_sms_question_gets_the_answer_with_numbered_choices(channels: RunningChannels) -> None:
    phone = new_phone()
    assert post_message(channels, phone, "is mdma therapy legal?") == 204
    replies = sent_to(channels, phone)
    assert len(replies) == 2, [r.body for r in replies]
    intro, answer = replies
    assert "automated assistant" in intro.body["Body"]
    assert "not an approved treatment" in answer.body["Body"]
    assert answer.body["Body"].endswith("\n" + LEGAL_CHOICES)
    assert answer.body["From"] == CHANNEL_ENV["TWILIO_NUMBER"]
    assert answer.path == f"/twilio/2010-04-01/Accounts/{CHANNEL_ENV['TWILIO_ACCOUNT_SID']}/Messages.json"
    account = f"{CHANNEL_ENV['TWILIO_ACCOUNT_SID']}:{CHANNEL_ENV['TWILIO_AUTH_TOKEN']}"
    assert answer.headers["Authorization"] == "Basic " + base64.b64encode(account.encode()).decode()


def test_replying_2_picks_the_second_choice(channels: RunningChannels) -> None:
    phone = new_phone()
    assert post_message(channels, phone, "is mdma therapy legal?") == 204
    assert post_message(channels, phone, "2") == 204
    assert channels.user_texts(f"twilio:{phone}")[-1] == "/faq/availability"
    assert channels.bot_actions(f"twilio:{phone}")[-1] == "utter_faq/availability"
    assert "ClinicalTrials.gov" in sent_to(channels, phone)[-1].body["Body"]


def test_did_you_mean_choices_are_numbered_and_a_number_picks_one(channels: RunningChannels) -> None:
    phone = new_phone()
    assert post_message(channels, phone, "hello") == 204
    assert post_message(channels, phone, "what about the thing") == 204
    assert channels.bot_actions(f"twilio:{phone}")[-1] == "utter_did_you_mean"
    offer = sent_to(channels, phone)[-1].body["Body"]
    assert "Did you mean" in offer
    choices = offer.split("\n")[1:]
    assert 3 <= len(choices) <= 4
    assert choices[-1] == f"{len(choices)}. Something else"
    assert [line.split(". ", 1)[0] for line in choices] == [str(n) for n in range(1, len(choices) + 1)]
    assert post_message(channels, phone, "1") == 204
    chosen = channels.user_texts(f"twilio:{phone}")[-1]
    assert chosen.startswith("/faq/")
    assert channels.bot_actions(f"twilio:{phone}")[-1] == "utter" + chosen.replace("/", "_", 1)


def test_a_number_with_no_choices_offered_is_just_text(channels: RunningChannels) -> None:
    phone = new_phone()
    assert post_message(channels, phone, "is mdma therapy legal?") == 204
    assert post_message(channels, phone, "7") == 204
    assert channels.user_texts(f"twilio:{phone}")[-1] == "7"


def test_whatsapp_replies_come_from_the_whatsapp_sender(channels: RunningChannels) -> None:
    sender = new_phone(whatsapp=True)
    assert post_message(channels, sender, "is mdma therapy legal?", channel=WHATSAPP) == 204
    answer = sent_to(channels, sender)[-1]
    assert answer.body["From"] == CHANNEL_ENV["TWILIO_WHATSAPP_NUMBER"]
    assert answer.body["Body"].endswith("\n" + LEGAL_CHOICES)
    assert post_message(channels, sender, "1", channel=WHATSAPP) == 204
    assert channels.bot_actions(sender)[-1] == "utter_faq/breakthrough_therapy_designation"
    assert "Breakthrough Therapy Designation" in sent_to(channels, sender)[-1].body["Body"]


@pytest.mark.parametrize("case", ["missing", "wrong-token", "loopback-url", "other-channel-url", "tampered-body"])
def test_requests_without_a_valid_signature_are_refused(channels: RunningChannels, case: str) -> None:
    phone = new_phone()
    params = inbound_params(phone, CHANNEL_ENV["TWILIO_NUMBER"], "is mdma therapy legal?")
    token = CHANNEL_ENV["TWILIO_AUTH_TOKEN"]
    signature = {
        "missing": None,
        "wrong-token": twilio_signature("0" * 32, SMS[1], params),
        # What the server sees behind a proxy, not the public URL Twilio signs.
        "loopback-url": twilio_signature(token, f"{channels.base_url}{SMS[0]}", params),
        "other-channel-url": twilio_signature(token, WHATSAPP[1], params),
        "tampered-body": twilio_signature(token, SMS[1], {**params, "Body": "hello"}),
    }[case]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    status, _ = channels.post(SMS[0], urllib.parse.urlencode(params).encode(), headers)
    assert status == 403
    assert not channels.conversation_exists(f"twilio:{phone}")
    assert sent_to(channels, phone) == []
    # The same message, signed as Twilio signs it, is processed.
    headers["X-Twilio-Signature"] = twilio_signature(token, SMS[1], params)
    status, _ = channels.post(SMS[0], urllib.parse.urlencode(params).encode(), headers)
    assert status == 204
    assert channels.conversation_exists(f"twilio:{phone}")
    assert sent_to(channels, phone)


def test_choices_survive_a_restart_of_the_rasa_server(channels: RunningChannels) -> None:
    phone = new_phone()
    assert post_message(channels, phone, "is mdma therapy legal?") == 204
    channels.restart_rasa()
    assert post_message(channels, phone, "1") == 204
    assert channels.user_texts(f"twilio:{phone}")[-1] == "/faq/breakthrough_therapy_designation"
    assert "Breakthrough Therapy Designation" in sent_to(channels, phone)[-1].body["Body"]
