"""Repeated deliveries, slow platforms and malformed requests, through a real Rasa server."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from typing import Callable, Dict, List

import pytest

from .conftest import CHANNEL_ENV, RunningChannels
from .signing import meta_signature, slack_headers, twilio_signature
from .test_messenger_webhook import WEBHOOK as MESSENGER
from .test_messenger_webhook import new_psid, page_event, signed
from .test_messenger_webhook import post as post_messenger
from .test_slack_webhook import WEBHOOK as SLACK
from .test_slack_webhook import message_event, new_user, post_json, posted_to, wait_for_reply
from .test_telegram_webhook import SECRET_HEADER, message_update, new_chat_id, post_update
from .test_telegram_webhook import WEBHOOK as TELEGRAM
from .test_twilio_webhook import SMS, inbound_params, new_phone
from .test_twilio_webhook import sent_to as twilio_sent_to

pytestmark = pytest.mark.e2e

REST = "/webhooks/rest/webhook"


# ---- The same event twice is answered twice and processed once -----------------------------


def eventually(check: Callable[[], bool], timeout: float = 60) -> bool:
    """Whether `check` holds within `timeout` seconds (for work done in the background)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_slack_event_delivered_again_is_processed_once(channels: RunningChannels) -> None:
    user, channel = new_user()
    event = message_event(user, channel, "what is ptsd")
    assert post_json(channels, event) == 200
    # Slack's retry: the same event_id, freshly signed, with its retry headers.
    body = json.dumps(event).encode()
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    status, _ = channels.post(SLACK, body, {**slack_signed(body, "application/json"), **retry})
    assert 200 <= status < 300
    assert post_json(channels, event) == 200
    # A new event in the same conversation is handled after anything queued before it.
    assert post_json(channels, message_event(user, channel, "hello")) == 200
    conversation = f"slack:{user}"
    assert eventually(
        lambda: channels.conversation_exists(conversation) and len(channels.user_texts(conversation)) >= 2
    )
    wait_for_reply(channels, channel, "Post-traumatic stress disorder")
    assert channels.user_texts(f"slack:{user}") == ["what is ptsd", "hello"]
    answers = [c for c in posted_to(channels, channel) if "Post-traumatic stress disorder" in c.body.get("text", "")]
    assert len(answers) == 1


def post_twilio(channels: RunningChannels, params: Dict[str, str]) -> int:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(CHANNEL_ENV["TWILIO_AUTH_TOKEN"], SMS[1], params),
    }
    status, _ = channels.post(SMS[0], urllib.parse.urlencode(params).encode(), headers)
    return status


def test_a_twilio_message_sent_again_with_the_same_message_sid_is_processed_once(channels: RunningChannels) -> None:
    phone = new_phone()
    params = inbound_params(phone, CHANNEL_ENV["TWILIO_NUMBER"], "what is ptsd")
    assert post_twilio(channels, params) == 204
    replies = len(twilio_sent_to(channels, phone))
    assert replies >= 1
    assert post_twilio(channels, params) == 204
    assert channels.user_texts(f"twilio:{phone}") == ["what is ptsd"]
    assert len(twilio_sent_to(channels, phone)) == replies
    # A new message (new MessageSid) from the same phone is processed.
    assert post_twilio(channels, inbound_params(phone, CHANNEL_ENV["TWILIO_NUMBER"], "hello")) == 204
    assert channels.user_texts(f"twilio:{phone}") == ["what is ptsd", "hello"]


def test_a_telegram_update_and_a_messenger_event_delivered_again_are_processed_once(
    channels: RunningChannels,
) -> None:
    chat_id = new_chat_id()
    update = message_update(chat_id, "what is ptsd")
    assert post_update(channels, update) == 200
    assert post_update(channels, update) == 200
    assert channels.user_texts(f"telegram:{chat_id}") == ["what is ptsd"]

    psid = new_psid()
    body = page_event(psid, {"text": "what is ptsd"})
    assert post_messenger(channels, body, signed(body)) == 200
    assert post_messenger(channels, body, signed(body)) == 200
    assert channels.user_texts(f"facebook:{psid}") == ["what is ptsd"]


# ---- A slow platform does not hold up other conversations ------------------------------------


def test_a_slow_graph_api_does_not_hold_up_other_conversations(channels: RunningChannels) -> None:
    platform = channels.platform
    psid = new_psid()
    with platform._lock:
        platform.facebook_delays[psid] = 3.0
    body = page_event(psid, {"text": "what is ptsd"})
    statuses: List[int] = []
    messenger = threading.Thread(target=lambda: statuses.append(post_messenger(channels, body, signed(body))))
    messenger.start()
    try:
        started = platform.wait_for(
            lambda _: f"facebook {psid} started" in platform.timeline_copy(), lambda c: False, timeout=60
        )
        assert f"facebook {psid} started" in platform.timeline_copy(), started
        rest_body = json.dumps({"sender": f"rest-{new_psid()}", "message": "/faq/legal_status"}).encode()
        status, answer = channels.post(REST, rest_body, {"Content-Type": "application/json"})
        platform.note("rest answered")
        assert status == 200 and json.loads(answer)
    finally:
        messenger.join(timeout=300)
        with platform._lock:
            platform.facebook_delays.pop(psid, None)
    timeline = [event for event in platform.timeline_copy() if psid in event or event == "rest answered"]
    # The REST answer came while the first slow Graph API call was still in progress.
    assert timeline.index("rest answered") < timeline.index(f"facebook {psid} finished"), timeline
    assert statuses == [200]
    assert channels.bot_actions(f"facebook:{psid}")[-1] == "utter_faq/what_is_ptsd"


# ---- Malformed requests get a clear 4xx, never a 5xx -----------------------------------------


def slack_signed(body: bytes, content_type: str) -> Dict[str, str]:
    return {"Content-Type": content_type, **slack_headers(CHANNEL_ENV["SLACK_SIGNING_SECRET"], body)}


def telegram_signed() -> Dict[str, str]:
    return {"Content-Type": "application/json", SECRET_HEADER: CHANNEL_ENV["TELEGRAM_SECRET_TOKEN"]}


def messenger_signed(body: bytes) -> Dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta_signature(CHANNEL_ENV["FACEBOOK_APP_SECRET"], body),
    }


ODD_ATTACHMENT = {"mid": "m_odd", "attachments": []}
NUMBER_TEXT = {"mid": "m_num", "text": 5}
DEEP = b"[" * 100_000 + b"]" * 100_000
FORM = "application/x-www-form-urlencoded"
MALFORMED = {
    "rest-empty": (REST, b"", lambda b: {"Content-Type": "application/json"}),
    "rest-huge": (
        REST,
        json.dumps({"sender": "u", "message": "x" * 400_000}).encode(),
        lambda b: {"Content-Type": "application/json"},
    ),
    "rest-deep": (REST, DEEP, lambda b: {"Content-Type": "application/json"}),
    "rest-latin1": (
        REST,
        '{"sender": "u", "message": "café"}'.encode("latin-1"),
        lambda b: {"Content-Type": "application/json"},
    ),
    "rest-utf16": (
        REST,
        '{"sender": "u", "message": "hi"}'.encode("utf-16"),
        lambda b: {"Content-Type": "application/json"},
    ),
    "rest-form": (REST, b"sender=u&message=hi", lambda b: {"Content-Type": FORM}),
    "slack-array": (SLACK, b"[1, 2]", lambda b: slack_signed(b, "application/json")),
    "slack-malformed": (SLACK, b'{"type": "event_callback", ', lambda b: slack_signed(b, "application/json")),
    "slack-event-not-object": (
        SLACK,
        b'{"type": "event_callback", "event": "x", "event_id": "Ev1x"}',
        lambda b: slack_signed(b, "application/json"),
    ),
    "slack-form-without-payload": (SLACK, b"nothing=here", lambda b: slack_signed(b, FORM)),
    "slack-form-bad-payload": (SLACK, b"payload=%7Bnot+json", lambda b: slack_signed(b, FORM)),
    "slack-form-payload-list": (SLACK, b"payload=%5B1%5D", lambda b: slack_signed(b, FORM)),
    "slack-form-actions-odd": (
        SLACK,
        b"payload=" + urllib.parse.quote(json.dumps({"actions": [{"type": "button"}], "user": 5})).encode(),
        lambda b: slack_signed(b, FORM),
    ),
    "slack-form-latin1": (SLACK, "payload=caf\xe9".encode("latin-1"), lambda b: slack_signed(b, FORM)),
    "slack-deep": (SLACK, DEEP, lambda b: slack_signed(b, "application/json")),
    "slack-no-content-type": (SLACK, b"hello", lambda b: slack_signed(b, "text/plain")),
    "telegram-empty": (TELEGRAM, b"", lambda b: telegram_signed()),
    "telegram-array": (TELEGRAM, b"[1]", lambda b: telegram_signed()),
    "telegram-malformed": (TELEGRAM, b'{"update_id": 1, "message": ', lambda b: telegram_signed()),
    "telegram-deep": (TELEGRAM, DEEP, lambda b: telegram_signed()),
    "telegram-message-not-object": (TELEGRAM, b'{"update_id": 5, "message": "hi"}', lambda b: telegram_signed()),
    "telegram-no-chat": (TELEGRAM, b'{"update_id": 6, "message": {"text": "hi"}}', lambda b: telegram_signed()),
    "telegram-callback-odd": (
        TELEGRAM,
        b'{"update_id": 7, "callback_query": {"data": 5, "message": []}}',
        lambda b: telegram_signed(),
    ),
    "telegram-channel-post": (
        TELEGRAM,
        b'{"update_id": 8, "channel_post": {"chat": {"id": 1}, "text": "hi"}}',
        lambda b: telegram_signed(),
    ),
    "telegram-huge": (
        TELEGRAM,
        json.dumps({"update_id": 9, "message": {"chat": {"id": 1}, "text": "x" * 100_000}}).encode(),
        lambda b: telegram_signed(),
    ),
    "telegram-latin1": (
        TELEGRAM,
        '{"update_id": 10, "message": {"chat": {"id": 1}, "text": "café"}}'.encode("latin-1"),
        lambda b: telegram_signed(),
    ),
    "messenger-array": (MESSENGER, b"[1]", messenger_signed),
    "messenger-empty": (MESSENGER, b"", messenger_signed),
    "messenger-deep": (MESSENGER, DEEP, messenger_signed),
    "messenger-entry-odd": (
        MESSENGER,
        b'{"object": "page", "entry": [5, {"messaging": "x"}, {"messaging": [{"sender": 1}]}]}',
        messenger_signed,
    ),
    "messenger-attachments-odd": (
        MESSENGER,
        json.dumps(
            {"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, "message": ODD_ATTACHMENT}]}]}
        ).encode(),
        messenger_signed,
    ),
    "messenger-text-not-string": (
        MESSENGER,
        json.dumps(
            {"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, "message": NUMBER_TEXT}]}]}
        ).encode(),
        messenger_signed,
    ),
    "messenger-latin1": (MESSENGER, '{"object": "café"}'.encode("latin-1"), messenger_signed),
    "twilio-json": (SMS[0], b'{"From": "+1", "Body": "hi"}', lambda b: {"Content-Type": "application/json"}),
    "twilio-latin1": (
        SMS[0],
        "From=%2B1&Body=caf\xe9".encode("latin-1"),
        lambda b: {"Content-Type": FORM, "X-Twilio-Signature": "x"},
    ),
    "twilio-empty": (SMS[0], b"", lambda b: {"Content-Type": FORM}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_get_a_4xx_or_are_skipped_never_a_5xx(channels: RunningChannels, case: str) -> None:
    path, body, headers = MALFORMED[case]
    status, answer = channels.post(path, body, headers(body))
    assert status < 500, (status, answer[:200])
    if case.startswith(("rest-", "twilio-")) or case in {
        "slack-array",
        "slack-malformed",
        "slack-form-without-payload",
        "slack-form-bad-payload",
        "slack-deep",
        "slack-no-content-type",
        "telegram-empty",
        "telegram-array",
        "telegram-malformed",
        "telegram-deep",
        "telegram-huge",
        "telegram-latin1",
        "messenger-array",
        "messenger-empty",
        "messenger-deep",
        "messenger-latin1",
        "slack-form-latin1",
    }:
        assert 400 <= status < 500, (status, answer[:200])
    if path == REST:
        assert set(json.loads(answer)) == {"error"}
    # The server still answers.
    ok = json.dumps({"sender": f"after-{case}", "message": "/faq/legal_status"}).encode()
    assert channels.post(REST, ok, {"Content-Type": "application/json"})[0] == 200
