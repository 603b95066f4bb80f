"""Configuration for the clinician-escalation store and alert delivery."""

from __future__ import annotations

from dataclasses import dataclass

WEBHOOK = "webhook"
EMAIL = "email"


@dataclass(frozen=True)
class EscalationConfig:
    """Settings of the escalation store and delivery worker, built by bot.settings.

    Attributes:
        db_url: SQLAlchemy URL of the escalation database (SQLite or PostgreSQL).
        webhook_url: Primary alert webhook (Slack incoming webhook or any HTTPS URL).
        webhook_secret: Shared secret used to sign webhook bodies with HMAC-SHA256.
        second_webhook_url: Webhook paged when an urgent escalation is not acknowledged.
        smtp_host: SMTP server for e-mail alerts; e-mail is off when empty.
        smtp_port: SMTP server port.
        smtp_user: SMTP login user, if the server needs one.
        smtp_password: SMTP login password, if the server needs one.
        smtp_from: Sender address of alert e-mails.
        smtp_to: Primary alert recipients.
        smtp_second_to: Recipients paged when an urgent escalation is not acknowledged.
        smtp_starttls: Upgrade the SMTP connection with STARTTLS before logging in.
        smtp_ca_file: CA bundle (PEM) that verifies the SMTP server; the system's CAs when unset.
        ack_minutes: Minutes an urgent escalation may stay open before a reminder.
        max_attempts: Delivery attempts per alert before it is dead-lettered.
        console_base_url: Base URL of the clinician console; alerts link to it.
        backoff_base_seconds: Ceiling of the first retry delay; doubles per attempt.
        backoff_cap_seconds: Upper bound of any retry delay.
        poll_interval_seconds: Pause between two delivery passes of the worker.
        lease_seconds: How long a claimed alert is reserved for the worker that took it.
        batch_size: Alerts claimed per delivery pass.
        send_timeout_seconds: Timeout of one webhook or SMTP delivery.
    """

    db_url: str = "sqlite:///var/escalations.db"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    second_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str | None = None
    smtp_to: tuple[str, ...] = ()
    smtp_second_to: tuple[str, ...] = ()
    smtp_starttls: bool = True
    smtp_ca_file: str | None = None
    ack_minutes: float = 10
    max_attempts: int = 8
    console_base_url: str = "http://localhost:8000/console"
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 300.0
    poll_interval_seconds: float = 1.0
    lease_seconds: float = 60.0
    batch_size: int = 20
    send_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        """Reject values that would silently stop alerts from being delivered."""
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.ack_minutes <= 0:
            raise ValueError("ack_minutes must be positive")
        if self.backoff_base_seconds < 0 or self.backoff_cap_seconds < 0:
            raise ValueError("backoff delays must not be negative")
        if self.lease_seconds <= 0 or self.poll_interval_seconds <= 0:
            raise ValueError("lease_seconds and poll_interval_seconds must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        for name in ("smtp_to", "smtp_second_to"):
            if isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a tuple of addresses, not a string")

    @property
    def email_enabled(self) -> bool:
        """Whether primary e-mail alerts can be sent."""
        return bool(self.smtp_host and self.smtp_from and self.smtp_to)

    @property
    def alert_channels(self) -> tuple[str, ...]:
        """Delivery channels that receive the first alert of every escalation."""
        channels: list[str] = []
        if self.webhook_url:
            channels.append(WEBHOOK)
        if self.email_enabled:
            channels.append(EMAIL)
        return tuple(channels)

    @property
    def second_contact_channels(self) -> tuple[str, ...]:
        """Delivery channels of the second contact, paged when nobody acknowledges."""
        channels: list[str] = []
        if self.second_webhook_url:
            channels.append(WEBHOOK)
        if self.smtp_host and self.smtp_from and self.smtp_second_to:
            channels.append(EMAIL)
        return tuple(channels)

    @property
    def reminder_channels(self) -> tuple[str, ...]:
        """Channels for overdue reminders: the second contact's, else the primary's."""
        return self.second_contact_channels or self.alert_channels
