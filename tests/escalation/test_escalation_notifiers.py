"""Tests of alert rendering, webhook signing and e-mail delivery on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime

import pytest

from bot.escalation.config import EscalationConfig
from bot.escalation.notifiers import (
    Alert,
    DeliveryError,
    EmailNotifier,
    RetryLater,
    WebhookNotifier,
    build_notifiers,
    build_reminder_notifiers,
)
from bot.escalation.store import UTC, Escalation, OutboxRow

from .receivers import SmtpSink, WebhookReceiver, free_port

TRANSCRIPT_MARKER = "quillfeather"
CREATED_AT = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


@pytest.fixture
def alert() -> Alert:
    """Return the alert of an escalation whose transcript holds a secret word."""
    escalation = Escalation(
        id="6f1c7a52-0000-4000-8000-000000000001",
        conversation_id="conversation-1",
        channel="socketio",
        kind="risk",
        level="urgent",
        category="suicide",
        status="open",
        created_at=CREATED_AT,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        resolution_note=None,
        contact_method="phone",
        contact_value="+1 555 0100",
        transcript=[
            {"sender": "user", "text": f"my {TRANSCRIPT_MARKER} plan", "timestamp": 1.0}
        ],
    )
    row = OutboxRow(
        id=1,
        escalation_id=escalation.id,
        channel="webhook",
        purpose="alert",
        idempotency_key=f"{escalation.id}:alert:webhook",
        status="sending",
        attempts=1,
        next_attempt_at=CREATED_AT,
        lease_until=None,
        lease_token="token",
        last_error=None,
        created_at=CREATED_AT,
        delivered_at=None,
    )
    return Alert.build(escalation, row, "https://care.example.org/console/")


def test_alert_carries_only_what_a_clinician_needs(alert: Alert) -> None:
    """The alert has the fields to act on, and no transcript or contact details."""
    assert alert.payload() == {
        "escalation_id": "6f1c7a52-0000-4000-8000-000000000001",
        "kind": "risk",
        "level": "urgent",
        "category": "suicide",
        "channel": "socketio",
        "created_at": "2026-11-28T09:30:00+00:00",
        "purpose": "alert",
        "console_url": "https://care.example.org/console/escalations/6f1c7a52-0000-4000-8000-000000000001",
    }
    assert TRANSCRIPT_MARKER not in alert.text()
    assert "555" not in alert.text()


def test_webhook_posts_signed_json_with_idempotency_key(alert: Alert) -> None:
    """A receiver can verify the HMAC and deduplicate with the Idempotency-Key."""

    async def scenario() -> WebhookReceiver:
        async with WebhookReceiver() as receiver:
            await WebhookNotifier(receiver.url, secret="s3cret").send(alert)
        return receiver

    [request] = asyncio.run(scenario()).requests

    assert request.headers["Idempotency-Key"] == alert.idempotency_key
    assert request.headers["Content-Type"] == "application/json"
    timestamp = request.headers["X-Escalation-Timestamp"]
    expected = hmac.new(
        b"s3cret", f"{timestamp}.".encode() + request.body, hashlib.sha256
    )
    assert hmac.compare_digest(
        request.headers["X-Escalation-Signature"], f"sha256={expected.hexdigest()}"
    )
    assert json.loads(request.body) == alert.payload()
    assert TRANSCRIPT_MARKER.encode() not in request.body


def test_webhook_without_secret_sends_no_signature(alert: Alert) -> None:
    """Without a secret no signature headers are invented."""

    async def scenario() -> WebhookReceiver:
        async with WebhookReceiver() as receiver:
            await WebhookNotifier(receiver.url).send(alert)
        return receiver

    [request] = asyncio.run(scenario()).requests

    assert "X-Escalation-Signature" not in request.headers
    assert request.headers["Idempotency-Key"] == alert.idempotency_key


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_webhook_non_2xx_raises(alert: Alert, status: int) -> None:
    """A refused alert raises so the worker retries it."""

    async def scenario() -> None:
        async with WebhookReceiver(statuses=[status]) as receiver:
            await WebhookNotifier(receiver.url).send(alert)

    with pytest.raises(DeliveryError, match=str(status)):
        asyncio.run(scenario())


def test_webhook_timeout_raises_without_leaking_the_url_path(alert: Alert) -> None:
    """A hung receiver times out; the secret URL part stays out of the error."""

    async def scenario() -> None:
        async with WebhookReceiver(delay_seconds=0.5) as receiver:
            url = receiver.url + "?token=SECRET-TOKEN"
            await WebhookNotifier(url, timeout_seconds=0.1).send(alert)

    with pytest.raises(DeliveryError, match="TimeoutError") as raised:
        asyncio.run(scenario())

    assert "SECRET-TOKEN" not in str(raised.value)


def test_unreachable_webhook_raises_without_leaking_the_url_path(alert: Alert) -> None:
    """A closed port raises DeliveryError naming the cause, not the secret path."""
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/SECRET-TOKEN"

    with pytest.raises(DeliveryError, match="ClientConnectorError") as raised:
        asyncio.run(WebhookNotifier(url).send(alert))

    assert "SECRET-TOKEN" not in str(raised.value)


def test_slack_webhook_gets_slack_blocks(alert: Alert) -> None:
    """Slack incoming webhooks get a message Slack can display."""
    notifier = WebhookNotifier(
        "https://hooks.slack.com/services/T000/B000/XXXX", secret="s"
    )

    body = json.loads(notifier.render(alert))

    assert notifier.is_slack
    assert set(body) == {"text", "blocks"}
    assert alert.console_url in body["text"]
    assert body["text"].startswith("URGENT: Risk escalation (suicide)")
    assert [block["type"] for block in body["blocks"]] == [
        "header",
        "section",
        "section",
    ]
    rendered = json.dumps(body)
    assert alert.escalation_id in rendered
    assert TRANSCRIPT_MARKER not in rendered


def test_other_hosts_get_the_plain_payload(alert: Alert) -> None:
    """Only the real Slack host gets the Slack format."""
    notifier = WebhookNotifier("https://slack.com.example.org/hooks.slack.com")

    assert not notifier.is_slack
    assert json.loads(notifier.render(alert)) == alert.payload()


def test_email_alert_reaches_smtp_server(alert: Alert) -> None:
    """The e-mail alert reaches a real SMTP server with the console link."""

    async def scenario() -> SmtpSink:
        async with SmtpSink() as sink:
            notifier = EmailNotifier(
                host="127.0.0.1",
                port=sink.port,
                user=None,
                password=None,
                sender="bot@example.org",
                recipients=["oncall@example.org", "lead@example.org"],
                starttls=False,
            )
            await notifier.send(alert)
        return sink

    sink = asyncio.run(scenario())

    [message] = sink.messages
    assert sink.recipients == ["oncall@example.org", "lead@example.org"]
    assert message["Subject"] == "URGENT: Risk escalation (suicide)"
    assert message["From"] == "bot@example.org"
    body = message.get_payload(decode=True).decode()
    assert alert.console_url in body
    assert alert.console_url in message.as_string()
    assert alert.escalation_id in body
    assert "Level: urgent" in body
    assert "2026-11-28T09:30:00+00:00" in body
    assert TRANSCRIPT_MARKER not in message.as_string()


def test_email_to_closed_port_raises(alert: Alert) -> None:
    """An unreachable SMTP server raises so the worker retries."""
    notifier = EmailNotifier(
        "127.0.0.1", 1, None, None, "bot@example.org", ["a@example.org"], False
    )

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(notifier.send(alert))


def test_notifiers_are_built_from_config() -> None:
    """Primary and second-contact notifiers follow the configuration."""
    config = EscalationConfig(
        webhook_url="https://hooks.example.org/primary",
        webhook_secret="s",
        second_webhook_url="https://hooks.example.org/second",
        smtp_host="smtp.example.org",
        smtp_from="bot@example.org",
        smtp_to=("oncall@example.org",),
    )

    primary = build_notifiers(config)
    second = build_reminder_notifiers(config)

    assert set(primary) == {"webhook", "email"}
    assert set(second) == {"webhook"}
    assert isinstance(second["webhook"], WebhookNotifier)
    assert second["webhook"].url == "https://hooks.example.org/second"
    assert config.reminder_channels == ("webhook",)


def test_config_defaults_and_validation() -> None:
    """Defaults match the documented env defaults; bad values fail early."""
    config = EscalationConfig()

    assert config.db_url == "sqlite:///var/escalations.db"
    assert (config.ack_minutes, config.max_attempts) == (10, 8)
    assert config.console_base_url == "http://localhost:8000/console"
    assert (config.backoff_base_seconds, config.backoff_cap_seconds) == (2.0, 300.0)
    assert config.poll_interval_seconds == 1.0
    assert config.alert_channels == config.reminder_channels == ()
    with pytest.raises(ValueError, match="max_attempts"):
        EscalationConfig(max_attempts=0)
    with pytest.raises(TypeError, match="smtp_to"):
        EscalationConfig(smtp_to="a@example.org")  # type: ignore[arg-type]


@pytest.mark.parametrize("purpose", ["alert", "upgrade", "reminder"])
@pytest.mark.parametrize(
    ("channel", "shown"),
    [("socketio", "socketio"), ("socketio\n<b>I want to die</b> " + "x" * 100, "unknown")],
)
def test_no_alert_form_carries_the_persons_words_or_contact(
    purpose: str, channel: str, shown: str
) -> None:
    """Title, text, webhook, Slack and e-mail bodies name level, category, channel and link only."""
    escalation = Escalation(
        id="6f1c7a52-0000-4000-8000-000000000002",
        conversation_id="+15550100999",
        channel=channel,
        kind="risk",
        level="priority",
        category="self_harm",
        status="open",
        created_at=CREATED_AT,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        resolution_note=None,
        contact_method="email",
        contact_value="hidden.person@example.org",
        transcript=[
            {"sender": "user", "text": f"the {TRANSCRIPT_MARKER} again", "timestamp": 1.0}
        ],
    )
    row = OutboxRow(
        id=2,
        escalation_id=escalation.id,
        channel="webhook",
        purpose=purpose,
        idempotency_key=f"{escalation.id}:{purpose}:webhook",
        status="sending",
        attempts=1,
        next_attempt_at=CREATED_AT,
        lease_until=None,
        lease_token="token",
        last_error=None,
        created_at=CREATED_AT,
        delivered_at=None,
    )
    alert = Alert.build(escalation, row, "https://care.example.org/console")
    forms = {
        "title": alert.title(),
        "text": alert.text(),
        "webhook": WebhookNotifier("https://hooks.example.org/x").render(alert).decode(),
        "slack": WebhookNotifier("https://hooks.slack.com/services/T/B/X").render(alert).decode(),
        "email": EmailNotifier(
            "127.0.0.1", 25, None, None, "bot@example.org", ["oncall@example.org"], False
        ).render(alert).as_string(),
    }

    assert "Priority" in forms["title"] and "self harm" in forms["title"]
    for needed in ("Level: priority", "Category: self_harm", f"Chat channel: {shown}", alert.console_url):
        assert needed in forms["text"]
    for name, rendered in forms.items():
        for secret in (TRANSCRIPT_MARKER, "hidden.person", "5550100999", "die", "<b>"):
            assert secret not in rendered, (name, secret)
    assert alert.channel == shown


def test_webhook_429_asks_the_worker_to_wait(alert: Alert) -> None:
    """A 429 raises RetryLater with the Retry-After wait."""

    async def scenario() -> None:
        async with WebhookReceiver(statuses=[(429, {"Retry-After": "42"})]) as receiver:
            await WebhookNotifier(receiver.url).send(alert)

    with pytest.raises(RetryLater) as raised:
        asyncio.run(scenario())

    assert raised.value.retry_after_seconds == 42.0
