"""Alert delivery to clinicians by signed webhook (generic or Slack) and by e-mail."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timezone
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from bot.escalation.config import EMAIL, WEBHOOK, EscalationConfig
from bot.escalation.store import Escalation, OutboxRow

SLACK_HOST = "hooks.slack.com"
DEFAULT_TIMEOUT_SECONDS = 5.0

# Before Python 3.11 asyncio.TimeoutError (what aiohttp raises) is not the builtin one.
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)

# The chat channel is a name like 'socketio'; anything else is not repeated in an alert.
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_LEVEL_LABELS = {"urgent": "URGENT", "priority": "Priority", "low": "Low priority"}
_KIND_LABELS = {
    "risk": "Risk escalation",
    "human_request": "Request to talk to a person",
}


class DeliveryError(Exception):
    """The receiver did not accept the alert."""


class RetryLater(DeliveryError):
    """The receiver asked us to wait (HTTP 429) before sending it anything again."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        """Keep how long the receiver asked us to wait."""
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


DEFAULT_RETRY_AFTER_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 3600.0


def retry_after_seconds(header: str | None, now: float | None = None) -> float:
    """Return the wait a Retry-After header asks for (seconds or an HTTP date).

    A missing or unreadable header means a minute; a wait is capped at an hour
    so a misconfigured receiver cannot silence alerts for days.
    """
    if not header or not header.strip():
        return DEFAULT_RETRY_AFTER_SECONDS
    value = header.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_SECONDS
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class Alert:
    """What a clinician needs to act on an escalation, and nothing the person wrote.

    Attributes:
        escalation_id: Id of the escalation, to look it up in the console.
        kind: 'risk' or 'human_request'.
        level: 'urgent', 'priority' or 'low'.
        category: Risk category, or 'human_request'.
        channel: Chat channel the person is using (not the delivery channel).
        created_at: When the escalation was raised, ISO 8601 UTC.
        purpose: 'alert' for the first notice, 'upgrade' when a later message raised
            the level, 'reminder' when nobody acknowledged.
        console_url: Link to the escalation in the authenticated clinician console.
        idempotency_key: Stable key so receivers can drop duplicate deliveries.
    """

    escalation_id: str
    kind: str
    level: str
    category: str
    channel: str
    created_at: str
    purpose: str
    console_url: str
    idempotency_key: str

    @classmethod
    def build(
        cls, escalation: Escalation, row: OutboxRow, console_base_url: str
    ) -> Alert:
        """Build the alert for one outbox row; the transcript is never copied."""
        return cls(
            escalation_id=escalation.id,
            kind=escalation.kind,
            level=escalation.level,
            category=escalation.category,
            channel=escalation.channel
            if _CHANNEL_NAME.fullmatch(escalation.channel)
            else "unknown",
            created_at=escalation.created_at.isoformat(timespec="seconds"),
            purpose=row.purpose,
            console_url=f"{console_base_url.rstrip('/')}/escalations/{escalation.id}",
            idempotency_key=row.idempotency_key,
        )

    def payload(self) -> dict[str, str]:
        """Return the alert fields sent to generic webhooks."""
        fields = asdict(self)
        del fields["idempotency_key"]
        return fields

    def title(self) -> str:
        """Return a one-line summary, e.g. 'URGENT: Risk escalation (suicide)'."""
        prefix = {
            "reminder": "Reminder, not yet acknowledged - ",
            "upgrade": "Raised - ",
        }.get(self.purpose, "")
        level = _LEVEL_LABELS.get(self.level, self.level)
        kind = _KIND_LABELS.get(self.kind, self.kind)
        return f"{prefix}{level}: {kind} ({self.category.replace('_', ' ')})"

    def text(self) -> str:
        """Return the plain-text body shared by e-mail and the Slack fallback text."""
        return "\n".join(
            [
                self.title(),
                "",
                f"Level: {self.level}",
                f"Category: {self.category}",
                f"Raised at: {self.created_at}",
                f"Chat channel: {self.channel}",
                f"Escalation id: {self.escalation_id}",
                f"Open in the console: {self.console_url}",
                "",
                "The conversation is available only in the clinician console.",
            ]
        )


class Notifier(Protocol):
    """Something that delivers an alert or raises."""

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise on any failure so the worker retries."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the X-Escalation-Signature value: HMAC-SHA256 of f"{timestamp}.{body}"."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Return a Slack incoming-webhook message for ``alert``."""
    fields = [
        ("Level", alert.level),
        ("Category", alert.category),
        ("Raised at", alert.created_at),
        ("Chat channel", alert.channel),
        ("Escalation id", alert.escalation_id),
        ("Purpose", alert.purpose),
    ]
    return {
        "text": f"{alert.title()} - {alert.console_url}",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": alert.title()[:150]},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}:*\n{value}"}
                    for name, value in fields
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"<{alert.console_url}|Open the escalation in the console>",
                },
            },
        ],
    }


class WebhookNotifier:
    """Posts alerts as signed JSON; Slack incoming webhooks get Slack's format."""

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """Remember where and how to post; no connection is opened until ``send``."""
        self.url = url
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.is_slack = urlsplit(url).hostname == SLACK_HOST

    def render(self, alert: Alert) -> bytes:
        """Return the exact request body that is posted (and signed) for ``alert``."""
        payload = slack_payload(alert) if self.is_slack else alert.payload()
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

    def headers(
        self, alert: Alert, body: bytes, timestamp: str | None = None
    ) -> dict[str, str]:
        """Return request headers, with an HMAC signature when a secret is set."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": alert.idempotency_key,
        }
        if self.secret:
            timestamp = timestamp or str(int(time.time()))
            headers["X-Escalation-Timestamp"] = timestamp
            headers["X-Escalation-Signature"] = sign(self.secret, timestamp, body)
        return headers

    async def send(self, alert: Alert) -> None:
        """POST the alert; raise DeliveryError on a non-2xx answer."""
        body = self.render(alert)
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    self.url, data=body, headers=self.headers(alert, body)
                ) as response,
            ):
                if response.status == 429:
                    raise RetryLater(
                        "webhook answered HTTP 429",
                        retry_after_seconds(response.headers.get("Retry-After")),
                    )
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"webhook answered HTTP {response.status}")
        except _TRANSPORT_ERRORS as error:
            # Webhook paths are often secrets (Slack): keep them out of logs and the DB.
            detail = str(error).replace(self.url, self.redacted_url)
            raise DeliveryError(f"{type(error).__name__}: {detail}") from error

    @property
    def redacted_url(self) -> str:
        """Return the webhook URL without its path, which may be a secret token."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/..."


class EmailNotifier:
    """Sends plain-text alert e-mails via SMTP in a thread, so the loop stays free."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str | None,
        password: str | None,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = True,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        ca_file: str | None = None,
    ) -> None:
        """Remember the SMTP settings; no connection is opened until ``send``.

        STARTTLS verifies the server's certificate and host name against the
        system's CAs, or against ``ca_file`` (a PEM bundle) when given: an
        unverified server would receive the login and every alert.
        """
        if not recipients:
            raise ValueError("EmailNotifier needs at least one recipient")
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.sender = sender
        self.recipients = tuple(recipients)
        self.starttls = starttls
        self.timeout_seconds = timeout_seconds
        self.ca_file = ca_file

    def tls_context(self) -> ssl.SSLContext:
        """Return a verifying TLS context (certificate chain and host name)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def render(self, alert: Alert) -> EmailMessage:
        """Return the e-mail sent for ``alert``."""
        message = EmailMessage()
        message["Subject"] = alert.title()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Message-ID"] = (
            f"<{alert.idempotency_key.replace(':', '.')}@escalation>"
        )
        text = alert.text()
        # Unwrapped 7bit keeps the console link clickable in every mail client.
        message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
        return message

    async def send(self, alert: Alert) -> None:
        """Send the alert e-mail; smtplib errors propagate so the worker retries."""
        await asyncio.to_thread(self._send_blocking, self.render(alert))

    def _send_blocking(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            if self.starttls:
                smtp.starttls(context=self.tls_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


def build_notifiers(config: EscalationConfig) -> dict[str, Notifier]:
    """Return the primary notifiers in ``config``, keyed by delivery channel."""
    notifiers: dict[str, Notifier] = {}
    if config.webhook_url:
        notifiers[WEBHOOK] = WebhookNotifier(
            config.webhook_url, config.webhook_secret, config.send_timeout_seconds
        )
    if config.email_enabled:
        notifiers[EMAIL] = _email_notifier(config, config.smtp_to)
    return notifiers


def build_reminder_notifiers(config: EscalationConfig) -> dict[str, Notifier]:
    """Return the second-contact notifiers by delivery channel (empty if none)."""
    notifiers: dict[str, Notifier] = {}
    if config.second_webhook_url:
        notifiers[WEBHOOK] = WebhookNotifier(
            config.second_webhook_url,
            config.webhook_secret,
            config.send_timeout_seconds,
        )
    if config.smtp_host and config.smtp_from and config.smtp_second_to:
        notifiers[EMAIL] = _email_notifier(config, config.smtp_second_to)
    return notifiers


def _email_notifier(
    config: EscalationConfig, recipients: Sequence[str]
) -> EmailNotifier:
    if not (config.smtp_host and config.smtp_from):
        raise ValueError("SMTP_HOST and SMTP_FROM are needed to send alert e-mails")
    return EmailNotifier(
        host=config.smtp_host,
        port=config.smtp_port,
        user=config.smtp_user,
        password=config.smtp_password,
        sender=config.smtp_from,
        recipients=recipients,
        starttls=config.smtp_starttls,
        timeout_seconds=config.send_timeout_seconds,
        ca_file=config.smtp_ca_file,
    )
