"""Slack events and button clicks through a real Rasa server; replies captured by the fake Web API."""

from __future__ import annotations

import json
import random
import time
import urllib.parse
from typing import Any, Dict, List, Optional

import pytest

from .conftest import CHANNEL_ENV, RunningChannels
from .fake_platform import PlatformCall
from .signing import slack_headers

pytestmark = pytest.mark.e2e

WEBHOOK = "/webhooks/slack/webhook"
SECRET = CHANNEL_ENV["SLACK_SIGNING_SECRET"]


def new_user() -> tuple[str, str]:
    suffix = f"{random.randint(0, 16**8):08X}"
    return f"U{suffix}", f"D{suffix}"


def message_event(user: str, channel: str, text: str) -> Dict[str, Any]:
    ts = f"{time.time():.6f}"
    return {
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ",
        "team_id": "T061EG9R6",
        "api_app_id": "A0PNCHHK2",
        "event": {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": "im",
        },
        "type": "event_callback",
        "authed_users": ["U0BOTUSER"],
        "event_id": f"Ev{random.randint(0, 10**9)}",
        "event_time": int(time.time()),
    }


def post_json(channels: RunningChannels, document: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> int:
    body = json.dumps(document).encode()
    signed = slack_headers(SECRET, body) if headers is None else headers
    status, _ = channels.post(WEBHOOK, body, {"Content-Type": "application/json", **signed})
    return status


def posted_to(channels: RunningChannels, channel: str) -> List[PlatformCall]:
    return channels.platform.calls_where(
        lambda c: c.platform == "slack" and c.method == "chat.postMessage" and c.body.get("channel") == channel
    )


def wait_for_reply(channels: RunningChannels, channel: str, text: str) -> List[PlatformCall]:
    return channels.platform.wait_for(
        lambda calls: any(text in (call.body.get("text") or "") for call in calls),
        lambda c: c.platform == "slack" and c.method == "chat.postMessage" and c.body.get("channel") == channel,
    )


def test_url_verification_answers_the_challenge(channels: RunningChannels) -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9"
    document = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"}
    body = json.dumps(document).encode()
    status, answer = channels.post(WEBHOOK, body, {"Content-Type": "application/json", **slack_headers(SECRET, body)})
    assert status == 200
    assert json.loads(answer) == {"challenge": challenge}


def test_a_direct_message_gets_the_faq_answer_with_buttons(channels: RunningChannels) -> None:
    user, channel = new_user()
    assert post_json(channels, message_event(user, channel, "is mdma therapy legal?")) == 200
    calls = wait_for_reply(channels, channel, "not an approved treatment")
    answer = next(call for call in calls if "not an approved treatment" in call.body["text"])
    assert answer.headers["Authorization"] == f"Bearer {CHANNEL_ENV['SLACK_BOT_TOKEN']}"
    buttons = answer.body["blocks"][1]["elements"]
    assert [(b["text"]["text"], b["value"]) for b in buttons] == [
        ("What Breakthrough Therapy means", "/faq/breakthrough_therapy_designation"),
        ("How to access it today", "/faq/availability"),
    ]
    assert channels.bot_actions(f"slack:{user}")[-1] == "utter_faq/legal_status"


def test_a_button_click_answers_the_chosen_topic(channels: RunningChannels) -> None:
    user, channel = new_user()
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "sam", "team_id": "T061EG9R6"},
        "channel": {"id": channel, "name": "directmessage"},
        "message": {"type": "message", "ts": f"{time.time():.6f}", "text": "Earlier answer"},
        "actions": [
            {
                "type": "button",
                "action_id": "a1",
                "block_id": "b1",
                "text": {"type": "plain_text", "text": "How to access it today"},
                "value": "/faq/availability",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_headers(SECRET, body)}
    status, _ = channels.post(WEBHOOK, body, headers)
    assert status == 200
    calls = wait_for_reply(channels, channel, "ClinicalTrials.gov")
    assert any("ClinicalTrials.gov" in call.body["text"] for call in calls)
    assert channels.bot_actions(f"slack:{user}")[-1] == "utter_faq/availability"


@pytest.mark.parametrize("case", ["wrong-secret", "stale-timestamp", "missing", "tampered-body"])
def test_requests_without_a_valid_recent_signature_are_refused(channels: RunningChannels, case: str) -> None:
    user, channel = new_user()
    document = message_event(user, channel, "is mdma therapy legal?")
    body = json.dumps(document).encode()
    headers = {
        "wrong-secret": slack_headers("0" * 32, body),
        "stale-timestamp": slack_headers(SECRET, body, timestamp=int(time.time()) - 10 * 60),
        "missing": {},
        "tampered-body": slack_headers(SECRET, body.replace(b"legal", b"LEGAL")),
    }[case]
    assert post_json(channels, document, headers) == 403
    # A genuine message afterwards is answered, and the refused one left no trace.
    other_user, other_channel = new_user()
    assert post_json(channels, message_event(other_user, other_channel, "what is ptsd")) == 200
    assert wait_for_reply(channels, other_channel, "Post-traumatic stress disorder")
    assert channels.conversation_exists(f"slack:{other_user}")
    assert not channels.conversation_exists(f"slack:{user}")
    assert posted_to(channels, channel) == []
