"""Durable record of clinician escalations, their alert outbox and audit trail."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, Row

from bot.db import create_tables
from bot.escalation.config import EMAIL, WEBHOOK, EscalationConfig

logger = logging.getLogger(__name__)

_RecordT = TypeVar("_RecordT")

# The timezone.utc singleton, spelled so it runs on Python 3.10 (datetime.UTC is 3.11+).
UTC = timezone(timedelta(0))

KINDS = ("risk", "human_request")
LEVELS = ("urgent", "priority", "low")
RISK_CATEGORIES = (
    "suicide",
    "self_harm",
    "harm_to_others",
    "medical_emergency",
    "acute_crisis",
    "abuse_danger",
    "unspecified",  # risk recognised by the classifier without a screen rule
)
HUMAN_REQUEST_CATEGORY = "human_request"
STATUSES = ("open", "acknowledged", "resolved")
CONTACT_METHODS = ("phone", "email")
DELIVERY_CHANNELS = (WEBHOOK, EMAIL)
PURPOSES = ("alert", "reminder")
SENDERS = ("user", "bot")

SYSTEM_ACTOR = "system"
MAX_ERROR_LENGTH = 500
SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timestamp stored in UTC and returned timezone-aware, on SQLite and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Convert to UTC; SQLite stores naive text, so the offset is dropped there."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                "naive datetimes are ambiguous: pass an aware UTC datetime"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Return stored timestamps as aware UTC datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()

escalations = sa.Table(
    "escalations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("acknowledged_at", UTCDateTime()),
    sa.Column("acknowledged_by", sa.String(255)),
    sa.Column("resolved_at", UTCDateTime()),
    sa.Column("resolved_by", sa.String(255)),
    sa.Column("resolution_note", sa.Text()),
    sa.Column("contact_method", sa.String(16)),
    sa.Column("contact_value", sa.String(255)),
    sa.Column("transcript", sa.JSON(), nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "escalation_id", sa.String(36), sa.ForeignKey("escalations.id"), nullable=False
    ),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("lease_token", sa.String(36)),
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime()),
    sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

escalation_events = sa.Table(
    "escalation_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "escalation_id",
        sa.String(36),
        sa.ForeignKey("escalations.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("note", sa.Text()),
)


class EscalationError(Exception):
    """Base class of escalation store errors."""


class EscalationNotFoundError(EscalationError, LookupError):
    """No escalation has the given id."""


class InvalidTransitionError(EscalationError):
    """The status change is not allowed from the escalation's current status."""


@dataclass(frozen=True)
class Escalation:
    """One request for a clinician, with the conversation for the console."""

    id: str
    conversation_id: str
    channel: str
    kind: str
    level: str
    category: str
    status: str
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    contact_method: str | None
    contact_value: str | None
    transcript: list[dict[str, Any]]


@dataclass(frozen=True)
class OutboxRow:
    """One alert to deliver on one channel, with its retry state."""

    id: int
    escalation_id: str
    channel: str
    purpose: str
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    lease_token: str | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class EscalationEvent:
    """One audit-trail entry: who did what to an escalation, and when."""

    id: int
    escalation_id: str
    actor: str
    action: str
    at: datetime
    note: str | None


def idempotency_key(escalation_id: str, purpose: str, channel: str) -> str:
    """Return the key that lets receivers drop duplicate deliveries of an alert."""
    return f"{escalation_id}:{purpose}:{channel}"


def _row_to(cls: type[_RecordT], row: Row) -> _RecordT:
    return cls(**dict(row._mapping))


def _check_choice(name: str, value: str | None, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _normalise_transcript(
    transcript: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    turns = []
    for turn in transcript:
        _check_choice("transcript sender", turn.get("sender"), SENDERS)
        text = turn.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError("transcript text must be a string")
        turns.append(
            {
                "sender": turn["sender"],
                "text": text or "",
                "timestamp": turn.get("timestamp"),
            }
        )
    return turns


def _ensure_sqlite_directory(url: sa.engine.URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the console read while the bot and worker write; foreign keys are off
    # by default in SQLite and should hold there as they do in PostgreSQL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class EscalationStore:
    """Stores escalations, their alert outbox and audit trail (SQLite/PostgreSQL)."""

    def __init__(
        self,
        db_url: str,
        *,
        alert_channels: Sequence[str] = (),
        schema: str | None = None,
    ) -> None:
        """Connect to the database and create the tables if they do not exist yet.

        Args:
            db_url: SQLAlchemy database URL.
            alert_channels: Delivery channels ('webhook', 'email') to alert.
            schema: PostgreSQL schema of the tables (default: the search path).
        """
        for channel in alert_channels:
            _check_choice("alert channel", channel, DELIVERY_CHANNELS)
        self.alert_channels = tuple(alert_channels)
        url = sa.engine.make_url(db_url)
        if url.get_backend_name() not in SUPPORTED_DIALECTS:
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}: "
                "use SQLite or PostgreSQL"
            )
        if url.get_backend_name() == "sqlite":
            _ensure_sqlite_directory(url)
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if url.get_backend_name() == "sqlite":
            sa.event.listen(engine, "connect", _configure_sqlite_connection)
        if schema:
            engine = engine.execution_options(schema_translate_map={None: schema})
        self._engine: Engine = engine
        self._dialect = url.get_backend_name()
        create_tables(metadata, self._engine)

    @classmethod
    def from_config(cls, config: EscalationConfig) -> EscalationStore:
        """Build a store that alerts every destination configured in ``config``."""
        return cls(config.db_url, alert_channels=config.alert_channels)

    def close(self) -> None:
        """Release pooled database connections."""
        self._engine.dispose()

    # Escalations ---------------------------------------------------------------

    def create_escalation(
        self,
        conversation_id: str,
        channel: str,
        kind: str,
        level: str,
        category: str | None,
        transcript: Iterable[Mapping[str, Any]],
    ) -> Escalation:
        """Record an escalation with its alerts and audit event in one transaction.

        Args:
            conversation_id: Rasa sender id of the conversation.
            channel: Input channel the person is using (e.g. 'socketio', 'rest').
            kind: 'risk' or 'human_request'.
            level: 'urgent', 'priority' or 'low'.
            category: A risk category for risks; 'human_request' (or None) otherwise.
            transcript: The conversation so far: {"sender", "text", "timestamp"} turns.

        Returns:
            The stored escalation.
        """
        _check_choice("kind", kind, KINDS)
        _check_choice("level", level, LEVELS)
        if kind == "human_request":
            category = category or HUMAN_REQUEST_CATEGORY
            _check_choice(
                "category", category, (*RISK_CATEGORIES, HUMAN_REQUEST_CATEGORY)
            )
        else:
            _check_choice("category", category, RISK_CATEGORIES)
        if not conversation_id:
            raise ValueError("conversation_id must not be empty")
        now = utc_now()
        escalation_id = str(uuid.uuid4())
        values: dict[str, Any] = {
            "id": escalation_id,
            "conversation_id": conversation_id,
            "channel": channel,
            "kind": kind,
            "level": level,
            "category": category,
            "status": "open",
            "created_at": now,
            "transcript": _normalise_transcript(transcript),
        }
        with self._engine.begin() as conn:
            conn.execute(escalations.insert().values(**values))
            self._insert_outbox_rows(
                conn, escalation_id, "alert", self.alert_channels, now
            )
            self._insert_event(
                conn, escalation_id, SYSTEM_ACTOR, "created", now, f"{kind} {level}"
            )
        if not self.alert_channels:
            logger.warning(
                "Escalation %s recorded but no alert destination is configured: "
                "nobody is notified until ESCALATION_WEBHOOK_URL or SMTP_* is set.",
                escalation_id,
            )
        return self.get(escalation_id)

    def get(self, escalation_id: str) -> Escalation:
        """Return one escalation or raise EscalationNotFoundError."""
        with self._engine.connect() as conn:
            row = conn.execute(
                escalations.select().where(escalations.c.id == escalation_id)
            ).first()
        if row is None:
            raise EscalationNotFoundError(f"no escalation with id {escalation_id!r}")
        return _row_to(Escalation, row)

    def list_escalations(
        self, status: str | None = None, limit: int | None = None
    ) -> list[Escalation]:
        """Return escalations, newest first, optionally only those with ``status``."""
        query = escalations.select().order_by(escalations.c.created_at.desc())
        if status is not None:
            _check_choice("status", status, STATUSES)
            query = query.where(escalations.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [_row_to(Escalation, row) for row in conn.execute(query)]

    def events(self, escalation_id: str) -> list[EscalationEvent]:
        """Return the audit trail of one escalation, oldest first."""
        query = (
            escalation_events.select()
            .where(escalation_events.c.escalation_id == escalation_id)
            .order_by(escalation_events.c.id)
        )
        with self._engine.connect() as conn:
            return [_row_to(EscalationEvent, row) for row in conn.execute(query)]

    def record_contact(
        self, escalation_id: str, method: str, value: str, actor: str = "user"
    ) -> Escalation:
        """Store how the person agreed to be contacted (only after their consent)."""
        _check_choice("contact method", method, CONTACT_METHODS)
        if not value or not value.strip():
            raise ValueError("contact value must not be empty")
        # The value stays out of the audit note: notes are shown in more places.
        return self._transition(
            escalation_id,
            allowed_from=("open", "acknowledged"),
            changes={"contact_method": method, "contact_value": value.strip()},
            actor=actor,
            action="contact_recorded",
            note=f"method={method}",
        )

    def acknowledge(self, escalation_id: str, actor: str) -> Escalation:
        """Mark an open escalation as taken on by ``actor``."""
        now = utc_now()
        return self._transition(
            escalation_id,
            allowed_from=("open",),
            changes={
                "status": "acknowledged",
                "acknowledged_at": now,
                "acknowledged_by": actor,
            },
            actor=actor,
            action="acknowledged",
            at=now,
        )

    def resolve(
        self, escalation_id: str, actor: str, note: str | None = None
    ) -> Escalation:
        """Close an open or acknowledged escalation with an optional resolution note."""
        now = utc_now()
        return self._transition(
            escalation_id,
            allowed_from=("open", "acknowledged"),
            changes={
                "status": "resolved",
                "resolved_at": now,
                "resolved_by": actor,
                "resolution_note": note,
            },
            actor=actor,
            action="resolved",
            at=now,
            note=note,
        )

    def _transition(
        self,
        escalation_id: str,
        *,
        allowed_from: Sequence[str],
        changes: Mapping[str, Any],
        actor: str,
        action: str,
        at: datetime | None = None,
        note: str | None = None,
    ) -> Escalation:
        if not actor:
            raise ValueError(
                "actor must not be empty: the audit trail needs to know who acted"
            )
        at = at or utc_now()
        with self._engine.begin() as conn:
            # A conditional update stops two clinicians acting at once both succeeding.
            result = conn.execute(
                escalations.update()
                .where(escalations.c.id == escalation_id)
                .where(escalations.c.status.in_(allowed_from))
                .values(**changes)
            )
            if result.rowcount != 1:
                status = conn.execute(
                    sa.select(escalations.c.status).where(
                        escalations.c.id == escalation_id
                    )
                ).scalar()
                if status is None:
                    raise EscalationNotFoundError(
                        f"no escalation with id {escalation_id!r}"
                    )
                raise InvalidTransitionError(
                    f"cannot record {action!r} on escalation {escalation_id}: "
                    f"it is {status!r} "
                    f"(allowed from {', '.join(allowed_from)})"
                )
            self._insert_event(conn, escalation_id, actor, action, at, note)
        return self.get(escalation_id)

    # Outbox --------------------------------------------------------------------

    def list_outbox(self, escalation_id: str | None = None) -> list[OutboxRow]:
        """Return outbox rows in creation order, optionally for one escalation."""
        query = outbox.select().order_by(outbox.c.id)
        if escalation_id is not None:
            query = query.where(outbox.c.escalation_id == escalation_id)
        with self._engine.connect() as conn:
            return [_row_to(OutboxRow, row) for row in conn.execute(query)]

    def claim_due(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[OutboxRow]:
        """Lease due alerts to this caller so no other worker sends them meanwhile.

        Pending rows whose retry time has come are claimable, and so are 'sending'
        rows whose lease expired because the worker holding them crashed. Each
        claim counts as an attempt.

        Args:
            now: Current time (aware).
            limit: Maximum number of rows to claim.
            lease_seconds: How long the rows stay reserved for this caller.

        Returns:
            The claimed rows, status 'sending', with the lease token to report back.
        """
        token = str(uuid.uuid4())
        due = sa.or_(
            sa.and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
            sa.and_(outbox.c.status == "sending", outbox.c.lease_until <= now),
        )
        candidates = (
            sa.select(outbox.c.id)
            .where(due)
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            # SKIP LOCKED lets concurrent workers take disjoint rows without waiting.
            candidates = candidates.with_for_update(skip_locked=True)
        with self._engine.begin() as conn:
            ids = conn.execute(candidates).scalars().all()
            if not ids:
                return []
            # Re-checking `due` makes the UPDATE the atomic claim on SQLite, which has
            # no row locks: a row another worker took since the SELECT won't match.
            conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids))
                .where(due)
                .values(
                    status="sending",
                    lease_until=now + timedelta(seconds=lease_seconds),
                    lease_token=token,
                    attempts=outbox.c.attempts + 1,
                )
            )
            rows = conn.execute(
                outbox.select()
                .where(outbox.c.lease_token == token)
                .order_by(outbox.c.id)
            )
            return [_row_to(OutboxRow, row) for row in rows]

    def mark_delivered(self, row: OutboxRow, now: datetime | None = None) -> bool:
        """Record a successful delivery; False if another worker took over the lease."""
        now = now or utc_now()
        with self._engine.begin() as conn:
            result = conn.execute(
                self._leased(row).values(
                    status="delivered",
                    delivered_at=now,
                    lease_until=None,
                    last_error=None,
                )
            )
            if result.rowcount != 1:
                return False
            self._insert_event(
                conn,
                row.escalation_id,
                SYSTEM_ACTOR,
                "delivered",
                now,
                f"{row.purpose} via {row.channel}",
            )
        return True

    def mark_failed(
        self,
        row: OutboxRow,
        error: str,
        next_attempt_at: datetime,
        *,
        max_attempts: int,
        now: datetime | None = None,
    ) -> str | None:
        """Schedule a retry of a failed delivery, or dead-letter it after max attempts.

        Args:
            row: The claimed row, as returned by claim_due.
            error: Short description of the failure (never message content).
            next_attempt_at: When the row may be claimed again.
            max_attempts: Attempts after which the row is dead-lettered.
            now: Current time, for the audit event.

        Returns:
            The new status ('pending' or 'dead'), or None if the lease was lost.
        """
        now = now or utc_now()
        error = error[:MAX_ERROR_LENGTH]
        dead = row.attempts >= max_attempts
        status = "dead" if dead else "pending"
        values: dict[str, Any] = {
            "status": status,
            "last_error": error,
            "lease_until": None,
        }
        if not dead:
            values["next_attempt_at"] = next_attempt_at
        with self._engine.begin() as conn:
            if conn.execute(self._leased(row).values(**values)).rowcount != 1:
                return None
            if dead:
                self._insert_event(
                    conn,
                    row.escalation_id,
                    SYSTEM_ACTOR,
                    "dead_lettered",
                    now,
                    f"{row.purpose} via {row.channel} failed {row.attempts} times: "
                    f"{error}",
                )
        return status

    def queue_overdue_reminders(
        self, now: datetime, ack_minutes: float, destinations: Sequence[str]
    ) -> int:
        """Queue one reminder per destination for urgent risks left open too long.

        Args:
            now: Current time (aware).
            ack_minutes: Minutes an urgent escalation may stay open before a reminder.
            destinations: Reminder channels (second contact, else primary).

        Returns:
            Number of reminder rows queued.
        """
        for channel in destinations:
            _check_choice("reminder channel", channel, DELIVERY_CHANNELS)
        if not destinations:
            return 0
        already_reminded = sa.exists().where(
            sa.and_(
                outbox.c.escalation_id == escalations.c.id,
                outbox.c.purpose == "reminder",
            )
        )
        overdue = sa.select(escalations.c.id).where(
            escalations.c.kind == "risk",
            escalations.c.level == "urgent",
            escalations.c.status == "open",
            escalations.c.created_at <= now - timedelta(minutes=ack_minutes),
            ~already_reminded,
        )
        queued = 0
        with self._engine.begin() as conn:
            for escalation_id in conn.execute(overdue).scalars().all():
                inserted = self._insert_outbox_rows(
                    conn, escalation_id, "reminder", destinations, now
                )
                if inserted:
                    queued += inserted
                    self._insert_event(
                        conn,
                        escalation_id,
                        SYSTEM_ACTOR,
                        "reminder_queued",
                        now,
                        f"not acknowledged after {ack_minutes:g} minutes; "
                        f"paging {', '.join(destinations)}",
                    )
        return queued

    # Helpers -------------------------------------------------------------------

    def _leased(self, row: OutboxRow) -> sa.sql.Update:
        return (
            outbox.update()
            .where(outbox.c.id == row.id)
            .where(outbox.c.status == "sending")
            .where(outbox.c.lease_token == row.lease_token)
        )

    def _insert_outbox_rows(
        self,
        conn: Connection,
        escalation_id: str,
        purpose: str,
        channels: Sequence[str],
        now: datetime,
    ) -> int:
        if not channels:
            return 0
        rows = [
            {
                "escalation_id": escalation_id,
                "channel": channel,
                "purpose": purpose,
                "idempotency_key": idempotency_key(escalation_id, purpose, channel),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for channel in channels
        ]
        # Two workers may queue the same reminder at once; the unique key keeps one.
        insert = (
            postgresql.insert(outbox)
            if self._dialect == "postgresql"
            else sqlite.insert(outbox)
        )
        inserted = 0
        for row in rows:
            result = conn.execute(
                insert.values(**row).on_conflict_do_nothing(
                    index_elements=["idempotency_key"]
                )
            )
            inserted += result.rowcount
        return inserted

    def _insert_event(
        self,
        conn: Connection,
        escalation_id: str,
        actor: str,
        action: str,
        at: datetime,
        note: str | None = None,
    ) -> None:
        conn.execute(
            escalation_events.insert().values(
                escalation_id=escalation_id,
                actor=actor,
                action=action,
                at=at,
                note=note,
            )
        )
