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
        second_webhook_url: Webhook paged too from the first reminder of an escalation on.
        smtp_host: SMTP server for e-mail alerts; e-mail is off when empty.
        smtp_port: SMTP server port.
        smtp_user: SMTP login user, if the server needs one.
        smtp_password: SMTP login password, if the server needs one.
        smtp_from: Sender address of alert e-mails.
        smtp_to: Primary alert recipients.
        smtp_second_to: Recipients paged too from the first reminder of an escalation on.
        smtp_starttls: Upgrade the SMTP connection with STARTTLS before logging in.
        ack_minutes: Minutes between reminders of an unacknowledged urgent escalation.
        smtp_ca_file: CA bundle (PEM) that verifies the SMTP server; the system's CAs when unset.
        max_attempts: Delivery attempts per alert before it is dead-lettered.
        console_base_url: Base URL of the clinician console; alerts link to it.
        backoff_base_seconds: Ceiling of the first retry delay; doubles per attempt.
        backoff_cap_seconds: Upper bound of any retry delay.
        poll_interval_seconds: Pause between two delivery passes of the worker.
        lease_seconds: How long a claimed alert is reserved for the worker that took it.
        batch_size: Alerts claimed per delivery pass.
        send_timeout_seconds: Timeout of one webhook or SMTP delivery.
        priority_ack_minutes: Minutes between reminders of an unacknowledged priority
            escalation (low-level ones are never reminded).
        human_requests_per_hour: New requests-for-a-person one conversation may open per
            hour; further ones are added to its latest escalation.
        low_alerts_per_minute: Low-level alerts sent per minute; more wait for later
            minutes (0: no cap). Urgent and priority alerts are never held back.
        record_timeout_seconds: How long the Rasa server waits for the database after
            spooling a decision before it answers anyway.
        import_attempts: Tries to store a spooled entry (with the database up) before
            it is quarantined.
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
    priority_ack_minutes: float = 60
    human_requests_per_hour: int = 3
    low_alerts_per_minute: int = 30
    record_timeout_seconds: float = 2.0
    import_attempts: int = 3

    def __post_init__(self) -> None:
        """Reject values that would silently stop alerts from being delivered."""
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.ack_minutes <= 0 or self.priority_ack_minutes <= 0:
            raise ValueError("ack_minutes and priority_ack_minutes must be positive")
        if self.human_requests_per_hour < 1 or self.import_attempts < 1:
            raise ValueError("human_requests_per_hour and import_attempts must be at least 1")
        if self.low_alerts_per_minute < 0 or self.record_timeout_seconds <= 0:
            raise ValueError("low_alerts_per_minute must not be negative, record_timeout_seconds positive")
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
    def reminder_minutes(self) -> dict[str, float]:
        """Minutes between reminders per level; low-level escalations are not reminded."""
        return {"urgent": self.ack_minutes, "priority": self.priority_ack_minutes}

    @property
    def reminder_channels(self) -> tuple[str, ...]:
        """Channels for overdue reminders: the second contact's, else the primary's."""
        return self.second_contact_channels or self.alert_channels


def destinations_configured(config: EscalationConfig) -> bool:
    """Whether anyone is alerted at all: a webhook or e-mail recipients are configured.

    The assistant must not tell a person "a clinician has been notified" when
    escalations only land in the database for the console.
    """
    return bool(config.alert_channels)
