"""Messenger webhooks through a real Rasa server; replies captured by the fake Graph API."""

from __future__ import annotations

import json
import random
import time
import urllib.parse
from typing import Any, Dict, List

import pytest

from .conftest import CHANNEL_ENV, RunningChannels
from .fake_platform import PlatformCall
from .signing import meta_signature

pytestmark = pytest.mark.e2e

WEBHOOK = "/webhooks/facebook/webhook"
SECRET = CHANNEL_ENV["FACEBOOK_APP_SECRET"]
PAGE_ID = "104857600000001"


def new_psid() -> str:
    return str(random.randint(10**15, 10**16 - 1))


def page_event(psid: str, message: Dict[str, Any]) -> bytes:
    stamp = int(time.time() * 1000)
    document = {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": stamp,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": PAGE_ID},
                        "timestamp": stamp,
                        "message": {"mid": f"m_{random.randint(0, 10**12)}", **message},
                    }
                ],
            }
        ],
    }
    return json.dumps(document).encode()


def post(channels: RunningChannels, body: bytes, headers: Dict[str, str]) -> int:
    status, _ = channels.post(WEBHOOK, body, {"Content-Type": "application/json", **headers})
    return status


def signed(body: bytes) -> Dict[str, str]:
    """Both headers, as Meta sends them."""
    return {
        "X-Hub-Signature-256": meta_signature(SECRET, body),
        "X-Hub-Signature": meta_signature(SECRET, body, "sha1"),
    }


def messages_to(channels: RunningChannels, psid: str) -> List[PlatformCall]:
    return channels.platform.calls_where(
        lambda c: c.platform == "facebook"
        and c.body.get("recipient", {}).get("id") == psid
        and "message" in c.body
    )


def calls_for(channels: RunningChannels, psid: str) -> List[PlatformCall]:
    return channels.platform.calls_where(
        lambda c: c.platform == "facebook" and c.body.get("recipient", {}).get("id") == psid
    )


def test_the_verification_handshake_needs_the_verify_token(channels: RunningChannels) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": CHANNEL_ENV["FACEBOOK_VERIFY_TOKEN"],
        "hub.challenge": "1158201444",
    }
    assert channels.get(f"{WEBHOOK}?{urllib.parse.urlencode(query)}") == (200, b"1158201444")
    wrong = {**query, "hub.verify_token": "guess"}
    assert channels.get(f"{WEBHOOK}?{urllib.parse.urlencode(wrong)}")[0] == 403


def test_a_question_gets_the_answer_with_numbered_quick_replies(channels: RunningChannels) -> None:
    psid = new_psid()
    question = page_event(psid, {"text": "is mdma therapy legal?"})
    assert post(channels, question, signed(question)) == 200
    sent = messages_to(channels, psid)
    answer = next(call for call in sent if "not an approved treatment" in call.body["message"].get("text", ""))
    assert answer.path == "/facebook/v19.0/me/messages"
    assert answer.query["access_token"] == [CHANNEL_ENV["FACEBOOK_PAGE_ACCESS_TOKEN"]]
    # The titles are longer than Messenger's 20 characters: numbered in the text, quick replies "1", "2".
    assert answer.body["message"]["text"].endswith("\n\n1. What Breakthrough Therapy means\n2. How to access it today")
    assert answer.body["message"]["quick_replies"] == [
        {"content_type": "text", "title": "1", "payload": "/faq/breakthrough_therapy_designation"},
        {"content_type": "text", "title": "2", "payload": "/faq/availability"},
    ]
    actions = [c.body.get("sender_action") for c in calls_for(channels, psid) if "sender_action" in c.body]
    assert actions == ["mark_seen", "typing_on", "typing_off"]


def test_a_quick_reply_or_a_typed_number_picks_the_choice(channels: RunningChannels) -> None:
    psid = new_psid()
    question = page_event(psid, {"text": "is mdma therapy legal?"})
    assert post(channels, question, signed(question)) == 200
    tap = page_event(psid, {"text": "2", "quick_reply": {"payload": "/faq/availability"}})
    assert post(channels, tap, signed(tap)) == 200
    assert channels.bot_actions(f"facebook:{psid}")[-1] == "utter_faq/availability"
    question = page_event(psid, {"text": "is mdma therapy legal?"})
    assert post(channels, question, signed(question)) == 200
    typed = page_event(psid, {"text": "1"})
    assert post(channels, typed, signed(typed)) == 200
    assert channels.user_texts(f"facebook:{psid}")[-1] == "/faq/breakthrough_therapy_designation"
    assert "Breakthrough Therapy Designation" in messages_to(channels, psid)[-1].body["message"]["text"]


def test_the_older_sha1_signature_alone_is_refused_unless_allowed(channels: RunningChannels) -> None:
    # FACEBOOK_ALLOW_SHA1_SIGNATURE is unset on this server (allowing it: test_signatures.py).
    psid = new_psid()
    body = page_event(psid, {"text": "what is ptsd"})
    assert post(channels, body, {"X-Hub-Signature": meta_signature(SECRET, body, "sha1")}) == 403
    assert not channels.conversation_exists(f"facebook:{psid}")
    assert calls_for(channels, psid) == []


@pytest.mark.parametrize(
    "case", ["missing", "wrong-secret", "tampered-body", "bad-sha256-good-sha1", "weaker-algorithm"]
)
def test_requests_without_a_valid_signature_are_refused(channels: RunningChannels, case: str) -> None:
    psid = new_psid()
    body = page_event(psid, {"text": "is mdma therapy legal?"})
    headers = {
        "missing": {},
        "wrong-secret": {"X-Hub-Signature-256": meta_signature("0" * 32, body)},
        "tampered-body": {"X-Hub-Signature-256": meta_signature(SECRET, body.replace(b"legal", b"safe"))},
        "bad-sha256-good-sha1": {
            "X-Hub-Signature-256": meta_signature("0" * 32, body),
            "X-Hub-Signature": meta_signature(SECRET, body, "sha1"),
        },
        "weaker-algorithm": {"X-Hub-Signature": meta_signature(SECRET, body, "md5")},
    }[case]
    assert post(channels, body, headers) == 403
    assert not channels.conversation_exists(f"facebook:{psid}")
    assert calls_for(channels, psid) == []
    # The same event, signed as Meta signs it, is processed.
    assert post(channels, body, signed(body)) == 200
    assert channels.conversation_exists(f"facebook:{psid}")
    assert messages_to(channels, psid)
