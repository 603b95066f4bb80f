"""The assistant end to end through the REST channel of a real Rasa server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import TOKEN, RunningAssistant, new_sender

pytestmark = pytest.mark.e2e


def test_first_message_introduces_the_assistant_then_answers(assistant: RunningAssistant) -> None:
    sender = new_sender()
    replies = assistant.say("is mdma assisted therapy legal in the united states", sender)
    assert len(replies) == 2
    intro, answer = replies
    assert "automated assistant" in intro["text"]
    assert "not medical advice" in intro["text"]
    assert "911" in intro["text"] and "988" in intro["text"]
    assert "not an approved treatment" in answer["text"]
    assert assistant.bot_actions(sender) == ["utter_intro", "utter_faq/legal_status"]


def test_answers_offer_follow_up_buttons_that_work(assistant: RunningAssistant) -> None:
    sender = new_sender()
    answer = assistant.say("what are the side effects of mdma", sender)[-1]
    payloads = [b["payload"] for b in answer["buttons"]]
    assert 2 <= len(payloads) <= 3
    assert all(p.startswith("/faq/") for p in payloads)
    follow_up = assistant.say(payloads[0], sender)
    assert len(follow_up) == 1
    assert assistant.bot_actions(sender)[-1] == "utter" + payloads[0].replace("/", "_", 1)


def test_later_turns_skip_the_introduction(assistant: RunningAssistant) -> None:
    sender = new_sender()
    assistant.say("hello", sender)
    replies = assistant.say("what is ptsd", sender)
    assert len(replies) == 1
    assert assistant.bot_actions(sender)[-1] == "utter_faq/what_is_ptsd"


def test_unsure_question_offers_did_you_mean_and_the_choice_answers(assistant: RunningAssistant) -> None:
    sender = new_sender()
    assistant.say("hi", sender)
    replies = assistant.say("what about the thing", sender)
    offer = replies[-1]
    assert "Did you mean" in offer["text"]
    titles = [b["title"] for b in offer["buttons"]]
    assert titles[-1] == "Something else"
    assert 3 <= len(titles) <= 4
    choice = offer["buttons"][0]["payload"]
    assistant.say(choice, sender)
    assert assistant.bot_actions(sender)[-1] == "utter" + choice.replace("/", "_", 1)
    something_else = assistant.say("/something_else", sender)
    assert something_else[0]["buttons"], "something else still offers a way on"


def test_did_you_mean_works_with_the_action_server_stopped(assistant: RunningAssistant) -> None:
    action_health = f"http://127.0.0.1:{assistant.settings.action_port}/health"
    assistant.supervisor.stop_service("action server")
    try:
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(action_health, timeout=5)
        sender = new_sender()
        assistant.say("hi", sender)
        offer = assistant.say("what about the thing", sender)[-1]
        assert "Did you mean" in offer["text"]
        payloads = [b["payload"] for b in offer["buttons"]]
        assert payloads[-1] == "/something_else"
        assert 2 <= len(payloads[:-1]) <= 3 and all(p.startswith("/faq/") for p in payloads[:-1])
        assert assistant.bot_actions(sender)[-1] == "utter_did_you_mean"
        assistant.say(payloads[0], sender)
        assert assistant.bot_actions(sender)[-1] == "utter" + payloads[0].replace("/", "_", 1)
    finally:
        assistant.supervisor.start_service("action server")
        assert assistant.supervisor.wait_until_ready(timeout=120)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "    ",
        "x" * 10_000,
        "🙂🙂🙂",
        "¿La terapia con MDMA es legal en España?",
        "<script>alert('x')</script><b>hi</b>",
        "hello\u0000\u0007\u001b[31m there",
    ],
    ids=["empty", "whitespace", "10k-chars", "emoji", "spanish", "html", "control-chars"],
)
def test_bad_input_gets_a_sensible_reply(assistant: RunningAssistant, message: str) -> None:
    replies = assistant.say(message)
    assert replies, "every message gets a reply"
    assert all(r.get("text") for r in replies)
    assert "<script>" not in json.dumps(replies)


@pytest.mark.parametrize(
    "body",
    [b'{"sender": "x", "message": ', b"[1, 2]", b'{"sender": "x"}', b'{"message": 5}', b"\xff\xfe"],
    ids=["truncated", "array", "no-message", "number", "not-utf8"],
)
def test_malformed_requests_get_400(assistant: RunningAssistant, body: bytes) -> None:
    status, response = assistant.post_raw(body)
    assert status == 400
    assert "error" in json.loads(response)


def test_http_api_requires_the_token(assistant: RunningAssistant) -> None:
    sender = new_sender()
    assistant.say("hello", sender)
    with pytest.raises(urllib.error.HTTPError) as error:
        assistant.tracker(sender, token=None)
    assert error.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as error:
        assistant.tracker(sender, token="wrong-" + TOKEN)
    assert error.value.code == 401
    assert assistant.tracker(sender)["sender_id"] == sender


def test_health_of_both_servers(assistant: RunningAssistant) -> None:
    with urllib.request.urlopen(assistant.base_url + "/webhooks/rest/", timeout=10) as response:
        assert json.loads(response.read()) == {"status": "ok"}
    action_health = f"http://127.0.0.1:{assistant.settings.action_port}/health"
    with urllib.request.urlopen(action_health, timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
