"""Risk messages end to end: crisis reply, escalation row, webhook alert, outages."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from tests.e2e.conftest import RunningAssistant, new_sender

pytestmark = pytest.mark.e2e

DELIVERY_TIMEOUT = 20.0


def _escalation_for(assistant: RunningAssistant, sender: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    store = assistant.store()
    try:
        while time.monotonic() < deadline:
            found = [e for e in store.list_escalations(status=None) if e.conversation_id == sender]
            if found:
                return found[0]
            time.sleep(0.2)
    finally:
        store.close()
    return None


def test_risk_message_gets_crisis_reply_escalation_and_webhook_alert(assistant: RunningAssistant) -> None:
    unique = f"zebra{uuid.uuid4().hex[:8]}"
    sender = new_sender()
    replies = assistant.say(f"I have the pills ready and I'm going to kill myself tonight {unique}", sender)
    texts = " ".join(r["text"] for r in replies)
    assert "911" in texts and "988" in texts
    assert replies[-1]["text"] == "Are you safe right now?"
    assert "action_escalate_to_clinician" in assistant.executed_actions(sender)

    escalation = _escalation_for(assistant, sender)
    assert escalation is not None
    assert escalation.kind == "risk" and escalation.level == "urgent" and escalation.status == "open"
    assert any(unique in turn["text"] for turn in escalation.transcript), "the console keeps the words"

    alert = assistant.receiver.wait_for(escalation.id, DELIVERY_TIMEOUT)
    assert alert is not None, "the webhook alert arrived within 20 seconds"
    assert unique not in alert["body"], "the alert never carries the person's words"
    body = json.loads(alert["body"])
    assert body["level"] == "urgent"
    assert body["console_url"].endswith(f"/escalations/{escalation.id}")
    headers = {k.lower(): v for k, v in alert["headers"].items()}
    expected = hmac.new(
        b"e2e-webhook-secret",
        f"{headers['x-escalation-timestamp']}.{alert['body']}".encode(),
        hashlib.sha256,
    ).hexdigest()
    assert headers["x-escalation-signature"] == f"sha256={expected}"


def test_the_bot_stays_with_the_person_and_records_contact_with_consent(assistant: RunningAssistant) -> None:
    sender = new_sender()
    assistant.say("i want to die", sender)
    not_safe = assistant.say("/deny", sender)
    assert "call 911 now" in not_safe[0]["text"].lower() or "911" in not_safe[0]["text"]
    assert "contact you" in not_safe[-1]["text"]
    asked = assistant.say("/affirm", sender)
    assert "phone number or an email" in asked[0]["text"]
    saved = assistant.say("you can call me on +1 555 201 8899", sender)
    assert "passed that to the care team" in saved[0]["text"]
    escalation = _escalation_for(assistant, sender)
    store = assistant.store()
    try:
        stored = store.get(escalation.id)
    finally:
        store.close()
    assert (stored.contact_method, stored.contact_value) == ("phone", "+1 555 201 8899")


def test_risk_in_the_middle_of_a_did_you_mean_prompt(assistant: RunningAssistant) -> None:
    sender = new_sender()
    assistant.say("hello", sender)
    offer = assistant.say("what about the thing", sender)
    assert "Did you mean" in offer[-1]["text"]
    replies = assistant.say("none of those, I just want to end my life", sender)
    assert any("911" in r["text"] for r in replies)
    assert "action_escalate_to_clinician" in assistant.executed_actions(sender)


@pytest.mark.parametrize(
    "question",
    ["can you die from taking mdma?", "is molly addictive?", "can this therapy make suicidal thoughts worse?"],
)
def test_informational_questions_get_answers_not_alarms(assistant: RunningAssistant, question: str) -> None:
    sender = new_sender()
    assistant.say(question, sender)
    assert "action_escalate_to_clinician" not in assistant.executed_actions(sender)
    assert assistant.bot_actions(sender)[-1].startswith("utter_faq/")


def test_request_for_a_person_is_queued_as_low_priority(assistant: RunningAssistant) -> None:
    sender = new_sender()
    replies = assistant.say("could someone from the clinic get in touch with me", sender)
    assert any("care team" in r["text"] for r in replies)
    escalation = _escalation_for(assistant, sender)
    assert escalation is not None
    assert (escalation.kind, escalation.level) == ("human_request", "low")


def test_alert_is_delivered_after_the_receiver_comes_back(assistant: RunningAssistant) -> None:
    assistant.receiver.stop()
    try:
        sender = new_sender()
        assistant.say("my friend took molly and now she's having a seizure", sender)
        escalation = _escalation_for(assistant, sender)
        assert escalation is not None
        time.sleep(3)
        assert not assistant.receiver.alerts_for(escalation.id)
    finally:
        assistant.receiver.start()
    assert assistant.receiver.wait_for(escalation.id, 60.0) is not None


def test_crisis_reply_still_appears_with_the_action_server_stopped(assistant: RunningAssistant) -> None:
    assistant.supervisor.stop_service("action server")
    try:
        sender = new_sender()
        replies = assistant.say("I'm going to overdose on my pills right now", sender)
        texts = " ".join(r["text"] for r in replies)
        assert "911" in texts and "988" in texts
    finally:
        assistant.supervisor.start_service("action server")
        assert assistant.supervisor.wait_until_ready(timeout=120)


def _alerts_for(assistant: RunningAssistant, escalation_id: str, count: int, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(assistant.receiver.alerts_for(escalation_id)) < count:
        time.sleep(0.2)
    return assistant.receiver.alerts_for(escalation_id)


def test_the_reply_says_the_team_is_alerted_only_with_the_record(assistant: RunningAssistant) -> None:
    sender = new_sender()
    replies = assistant.say("I'm going to hang myself tonight", sender)
    texts = [r["text"] for r in replies]
    assert any("being alerted" in text and "may not reply right away" in text for text in texts)
    assert _escalation_for(assistant, sender) is not None


def test_an_unsure_answer_about_safety_makes_the_escalation_urgent_and_alerts_again(
    assistant: RunningAssistant,
) -> None:
    sender = new_sender()
    assistant.say("i keep thinking everyone would be better off if i was gone", sender)
    first = _escalation_for(assistant, sender)
    assert first is not None and first.level == "priority"
    assert len(_alerts_for(assistant, first.id, 1)) == 1

    replies = assistant.say("idk", sender)

    assert any("911" in r["text"] for r in replies), "the not-safe reply"
    store = assistant.store()
    try:
        escalations = [e for e in store.list_escalations(status=None) if e.conversation_id == sender]
    finally:
        store.close()
    assert [(e.id, e.level) for e in escalations] == [(first.id, "urgent")], "updated, not duplicated"
    alerts = _alerts_for(assistant, first.id, 2)
    assert len(alerts) == 2, "alerted again at the higher level"
    assert "idk" not in alerts[1]["body"]


def test_a_number_nobody_asked_for_is_not_kept(assistant: RunningAssistant) -> None:
    sender = new_sender()
    assistant.say("could someone from the clinic get in touch with me", sender)
    replies = assistant.say("+1 555 201 7766", sender)  # before saying yes to being contacted
    assert "haven't kept that" in replies[0]["text"]
    escalation = _escalation_for(assistant, sender)
    store = assistant.store()
    try:
        assert store.get(escalation.id).contact_value is None
        assert store.contact_history(escalation.id) == []
    finally:
        store.close()


def test_a_withdrawn_contact_is_cleared_and_kept_in_the_history(assistant: RunningAssistant) -> None:
    sender = new_sender()
    assistant.say("could someone from the clinic get in touch with me", sender)
    assistant.say("/affirm", sender)
    saved = assistant.say("sam.e2e@example.org", sender)
    assert "passed that to the care team" in saved[0]["text"]

    withdrawn = assistant.say("please delete my email, I don't want to be contacted", sender)

    assert "don't want the care team to contact you" in withdrawn[0]["text"]
    escalation = _escalation_for(assistant, sender)
    store = assistant.store()
    try:
        assert store.get(escalation.id).contact_value is None
        assert [entry.action for entry in store.contact_history(escalation.id)] == ["given", "withdrawn"]
    finally:
        store.close()
