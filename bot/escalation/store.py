"""Durable record of clinician escalations, their alert outbox and audit trail.

Every decision is one transaction: the escalation (new or updated), its
alerts in the outbox and an audit event are written together or not at all.
Recording is idempotent by (conversation id, turn), so the Rasa server, a
spool import and a retry may all store the same decision without
duplicating it; a later decision in the same conversation updates its open
escalation instead of opening a second one.

Ids chosen by callers (conversation ids, turns) have no length limit: they are
kept in full in Text columns and indexed by a fixed-length SHA-256 key, since
PostgreSQL cannot index arbitrarily long values.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, Row

from bot.db import create_tables, upgrade_tables
from bot.escalation.config import EMAIL, WEBHOOK, EscalationConfig
from bot.escalation.records import (
    CONTACT_METHODS,
    HUMAN_REQUEST_CATEGORY,
    KINDS,
    LEVEL_RANK,
    LEVELS,
    RISK_CATEGORIES,
    SENDERS,
    UNKNOWN_CONVERSATION,
    UNSPECIFIED_CATEGORY,
    UTC,
    ContactRequest,
    EscalationRequest,
    Normalised,
    normalise,
    normalise_id,
    stable_key,
    storable,
    utc_now,
)

logger = logging.getLogger(__name__)

_RecordT = TypeVar("_RecordT")

__all__ = [
    "CONTACT_METHODS",
    "HUMAN_REQUEST_CATEGORY",
    "KINDS",
    "LEVELS",
    "RISK_CATEGORIES",
    "SENDERS",
    "UTC",
    "utc_now",
]

STATUSES = ("open", "acknowledged", "resolved")
UNRESOLVED = ("open", "acknowledged")
DELIVERY_CHANNELS = (WEBHOOK, EMAIL)
PURPOSES = ("alert", "upgrade", "reminder")
PRIMARY = "primary"
SECOND = "second"
RECIPIENTS = (PRIMARY, SECOND)

# Indexes of earlier versions: conversation ids are now looked up by their fixed-length key.
OBSOLETE_INDEXES = ("ix_escalations_conversation_id",)

SYSTEM_ACTOR = "system"
MAX_ERROR_LENGTH = 500
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
# How long a SQLite writer waits for another's transaction before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30


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
    sa.Column("conversation_id", sa.Text(), nullable=False),
    sa.Column("conversation_key", sa.String(64), index=True),
    sa.Column("channel", sa.Text(), nullable=False),
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
    sa.Column("contact_value", sa.Text()),
    sa.Column("transcript", sa.JSON(), nullable=False),
    sa.Column("turn", sa.Text()),
    sa.Column("decided_at", UTCDateTime()),
    # Start of the current reminder interval: the first alert, an upgrade or a reminder.
    sa.Column("last_alerted_at", UTCDateTime()),
    sa.Column("reminders_sent", sa.Integer(), nullable=False, server_default="0"),
)

# One row per decision stored, first or merged: (conversation_id, turn) is unique.
escalation_decisions = sa.Table(
    "escalation_decisions",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("decision_key", sa.String(64), nullable=False, unique=True),
    sa.Column("conversation_key", sa.String(64), nullable=False, index=True),
    sa.Column("escalation_id", sa.String(36), sa.ForeignKey("escalations.id")),
    sa.Column("turn", sa.Text(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

# Every contact given or withdrawn, so a correction never erases the earlier one.
escalation_contacts = sa.Table(
    "escalation_contacts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("entry_key", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "escalation_id",
        sa.String(36),
        sa.ForeignKey("escalations.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("method", sa.String(16)),
    sa.Column("value", sa.Text()),
    sa.Column("at", UTCDateTime(), nullable=False),
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
    # Claim order: urgent (0), priority (1), low (2); rows of older schemas count as urgent.
    sa.Column("level_rank", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("recipient", sa.String(16), nullable=False, server_default=PRIMARY),
    sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_outbox_status_level_rank_created_at", "status", "level_rank", "created_at"),
)

# A receiver that answered 429 pauses every row for it until the time it asked for.
delivery_pauses = sa.Table(
    "delivery_pauses",
    metadata,
    sa.Column("recipient", sa.String(16), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("until", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text()),
)

# Spooled entries that could not be stored after their attempts (the file is kept too).
quarantined_entries = sa.Table(
    "quarantined_entries",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("file_name", sa.Text(), nullable=False),
    sa.Column("entry_type", sa.String(32)),
    sa.Column("level", sa.String(16)),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
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
    """No escalation has the given id (or the conversation has none)."""


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
    reminders_sent: int = 0


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
    level_rank: int = 0
    recipient: str = PRIMARY


@dataclass(frozen=True)
class EscalationEvent:
    """One audit-trail entry: who did what to an escalation, and when."""

    id: int
    escalation_id: str
    actor: str
    action: str
    at: datetime
    note: str | None


@dataclass(frozen=True)
class ContactEntry:
    """One contact given ('given', with method and value) or withdrawn ('withdrawn')."""

    id: int
    escalation_id: str
    action: str
    method: str | None
    value: str | None
    at: datetime


@dataclass(frozen=True)
class DeadLetter:
    """Something that could not be stored or sent after its attempts: a person must look.

    Attributes:
        source: 'outbox' (an alert that was never delivered) or 'spool' (a spooled
            entry that could not be stored; its file is in the quarantine folder).
        reference: The outbox row id, or the quarantined file's name.
        escalation_id: The escalation of a dead alert; None for a spool entry.
        level: The escalation's level, when known.
        detail: What failed (purpose and channel for alerts, the entry type for spool files).
        reason: The last error; never the person's words.
        at: When it was given up.
    """

    source: str
    reference: str
    escalation_id: str | None
    level: str | None
    detail: str
    reason: str
    at: datetime


def idempotency_key(
    escalation_id: str, purpose: str, channel: str, recipient: str = PRIMARY
) -> str:
    """Return the key that lets receivers drop duplicate deliveries of an alert."""
    key = f"{escalation_id}:{purpose}:{channel}"
    return key if recipient == PRIMARY else f"{key}:{recipient}"


def _row_to(cls: type[_RecordT], row: Row) -> _RecordT:
    names = {field.name for field in fields(cls)}  # type: ignore[arg-type]
    return cls(**{key: value for key, value in row._mapping.items() if key in names})


def _check_choice(name: str, value: str | None, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _strict_transcript(
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


def _turn_identity(turn: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return (turn.get("sender"), turn.get("text"), turn.get("timestamp"))


def extend_transcript(
    stored: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Return the stored turns followed by those of ``new`` not already stored."""
    seen = {_turn_identity(turn) for turn in stored}
    merged = [dict(turn) for turn in stored]
    for turn in new:
        if _turn_identity(turn) not in seen:
            seen.add(_turn_identity(turn))
            merged.append(dict(turn))
    return merged


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


def _advisory_lock_id(key: str) -> int:
    """Return a signed 64-bit lock id for PostgreSQL's advisory locks."""
    value = int(key[:16], 16)
    return value - (1 << 64) if value >= (1 << 63) else value


class EscalationStore:
    """Stores escalations, their alert outbox and audit trail (SQLite/PostgreSQL)."""

    def __init__(
        self,
        db_url: str,
        *,
        alert_channels: Sequence[str] = (),
        schema: str | None = None,
        connect_timeout_seconds: float | None = None,
        human_requests_per_hour: int = 3,
        low_alerts_per_minute: int = 30,
    ) -> None:
        """Connect to the database and create or upgrade the tables.

        Args:
            db_url: SQLAlchemy database URL.
            alert_channels: Delivery channels ('webhook', 'email') to alert.
            schema: PostgreSQL schema of the tables (default: the search path).
            connect_timeout_seconds: Give up connecting after this long (PostgreSQL).
            human_requests_per_hour: New human-request escalations one conversation may
                open per hour; further requests are added to the latest one.
            low_alerts_per_minute: Low-level alerts sent per minute; beyond it they
                are deferred to later minutes (0 turns the cap off).
        """
        for channel in alert_channels:
            _check_choice("alert channel", channel, DELIVERY_CHANNELS)
        if human_requests_per_hour < 1:
            raise ValueError("human_requests_per_hour must be at least 1")
        if low_alerts_per_minute < 0:
            raise ValueError("low_alerts_per_minute must not be negative")
        self.alert_channels = tuple(alert_channels)
        self.human_requests_per_hour = human_requests_per_hour
        self.low_alerts_per_minute = low_alerts_per_minute
        url = sa.engine.make_url(db_url)
        if url.get_backend_name() not in SUPPORTED_DIALECTS:
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}: "
                "use SQLite or PostgreSQL"
            )
        connect_args: dict[str, Any] = {}
        options: dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            _ensure_sqlite_directory(url)
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_SECONDS
            if url.database and url.database != ":memory:":
                # Reuse file connections (SQLAlchemy 1.4 reopens the file per use);
                # the pool hands each to one thread at a time.
                connect_args["check_same_thread"] = False
                options["poolclass"] = sa.pool.QueuePool
        elif connect_timeout_seconds is not None:
            connect_args["connect_timeout"] = max(1, round(connect_timeout_seconds))
        engine = sa.create_engine(
            url, future=True, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args, **options
        )
        if url.get_backend_name() == "sqlite":
            sa.event.listen(engine, "connect", _configure_sqlite_connection)
        if schema:
            engine = engine.execution_options(schema_translate_map={None: schema})
        self._engine: Engine = engine
        self._dialect = url.get_backend_name()
        self._schema = schema
        create_tables(metadata, self._engine)
        upgrade_tables(
            metadata, self._engine, schema=schema, obsolete_indexes=OBSOLETE_INDEXES
        )
        self._backfill_conversation_keys()

    @classmethod
    def from_config(
        cls, config: EscalationConfig, *, schema: str | None = None
    ) -> EscalationStore:
        """Build a store that alerts every destination configured in ``config``."""
        return cls(
            config.db_url,
            alert_channels=config.alert_channels,
            schema=schema,
            connect_timeout_seconds=config.record_timeout_seconds,
            human_requests_per_hour=config.human_requests_per_hour,
            low_alerts_per_minute=config.low_alerts_per_minute,
        )

    def close(self) -> None:
        """Release pooled database connections."""
        self._engine.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # Recording decisions -----------------------------------------------------------

    def record(self, request: EscalationRequest) -> Escalation:
        """Store one escalation decision; idempotent by (conversation_id, turn).

        A decision already stored returns its escalation unchanged. A decision in a
        conversation whose escalation is not resolved updates that escalation: the
        level is raised if the new one is higher (with an 'upgrade' alert), the
        transcript gains the new turns, and an audit event is written. Otherwise a
        new escalation is opened with an alert per destination. Values are
        normalised, never rejected (see bot.escalation.records.normalise).

        Args:
            request: The decision, as the Rasa server made it.

        Returns:
            The escalation the decision belongs to.
        """
        decision = normalise(request)
        now = utc_now()
        with self._engine.begin() as conn:
            escalation_id = self._record_in(conn, decision, now)
            row = conn.execute(
                escalations.select().where(escalations.c.id == escalation_id)
            ).one()
        return _row_to(Escalation, row)

    def _record_in(self, conn: Connection, decision: Normalised, now: datetime) -> str:
        if self._dialect == "postgresql":
            # Serialises decisions of one conversation, so two never both open an escalation.
            conn.execute(
                sa.select(sa.func.pg_advisory_xact_lock(_advisory_lock_id(decision.conversation_key)))
            )
        # On SQLite this first write takes the database's write lock, with the same effect.
        inserted = conn.execute(
            self._insert(escalation_decisions)
            .values(
                decision_key=decision.decision_key,
                conversation_key=decision.conversation_key,
                turn=decision.turn,
                kind=decision.kind,
                level=decision.level,
                category=decision.category,
                decided_at=decision.decided_at,
                recorded_at=now,
            )
            .on_conflict_do_nothing(index_elements=["decision_key"])
        )
        if inserted.rowcount != 1:
            existing = conn.execute(
                sa.select(escalation_decisions.c.escalation_id).where(
                    escalation_decisions.c.decision_key == decision.decision_key
                )
            ).scalar()
            if existing is None:
                raise EscalationError("a stored decision has no escalation")
            return str(existing)
        # One query finds both the open escalation and this hour's requests for a person.
        candidates = conn.execute(
            escalations.select()
            .where(escalations.c.conversation_key == decision.conversation_key)
            .where(
                sa.or_(
                    escalations.c.status.in_(UNRESOLVED),
                    sa.and_(
                        escalations.c.kind == "human_request",
                        escalations.c.created_at > now - timedelta(hours=1),
                    ),
                )
            )
            .order_by(escalations.c.created_at.desc())
        ).all()
        open_row = next((row for row in candidates if row.status in UNRESOLVED), None)
        recent_requests = [
            row
            for row in candidates
            if row.kind == "human_request" and row.created_at > now - timedelta(hours=1)
        ]
        if open_row is not None:
            escalation_id = self._merge(conn, open_row, decision, now, "merged")
        elif (
            # Only low-level requests are limited: urgent and priority always open one.
            decision.kind == "human_request"
            and decision.level == "low"
            and len(recent_requests) >= self.human_requests_per_hour
        ):
            escalation_id = self._merge(
                conn, recent_requests[0], decision, now, "merged_rate_limited"
            )
        else:
            escalation_id = self._insert_escalation(
                conn,
                decision.conversation_id,
                decision.channel,
                decision.kind,
                decision.level,
                decision.category,
                decision.transcript,
                now,
                turn=decision.turn,
                decided_at=decision.decided_at,
                notes=decision.notes,
            )
        conn.execute(
            escalation_decisions.update()
            .where(escalation_decisions.c.decision_key == decision.decision_key)
            .values(escalation_id=escalation_id)
        )
        return escalation_id

    def _merge(
        self,
        conn: Connection,
        row: Row,
        decision: Normalised,
        now: datetime,
        action: str,
    ) -> str:
        current = row._mapping
        escalation_id = str(current["id"])
        changes: dict[str, Any] = {
            "transcript": extend_transcript(current["transcript"] or [], decision.transcript)
        }
        raised = LEVEL_RANK[decision.level] < LEVEL_RANK[current["level"]]
        becomes_risk = decision.kind == "risk" and current["kind"] != "risk"
        if (raised or becomes_risk) and not (
            decision.category == UNSPECIFIED_CATEGORY and current["kind"] == "risk"
        ):
            changes["category"] = decision.category
        if raised or becomes_risk:
            changes["kind"] = "risk" if decision.kind == "risk" else current["kind"]
        if raised:
            changes["level"] = decision.level
            changes["last_alerted_at"] = now
        conn.execute(
            escalations.update().where(escalations.c.id == escalation_id).values(**changes)
        )
        notes = [f"{decision.kind} {decision.level} at a later turn"]
        if raised:
            notes.append(f"level raised from {current['level']} to {decision.level}")
        notes.extend(decision.notes)
        self._insert_event(conn, escalation_id, SYSTEM_ACTOR, action, now, "; ".join(notes))
        if raised and current["status"] != "resolved":
            rank = LEVEL_RANK[decision.level]
            # Alerts still waiting go out at the new level's place in the queue, and
            # one held back by the low-level cap is held no longer.
            conn.execute(
                outbox.update()
                .where(outbox.c.escalation_id == escalation_id)
                .where(outbox.c.status.in_(("pending", "sending")))
                .values(level_rank=rank)
            )
            conn.execute(
                outbox.update()
                .where(outbox.c.escalation_id == escalation_id)
                .where(outbox.c.status == "pending")
                .where(outbox.c.attempts == 0)
                .where(outbox.c.next_attempt_at > now)
                .values(next_attempt_at=now)
            )
            self._insert_outbox_rows(
                conn,
                escalation_id,
                f"upgrade-{decision.level}",
                self.alert_channels,
                now,
                level_rank=rank,
                stored_purpose="upgrade",
            )
        return escalation_id

    def create_escalation(
        self,
        conversation_id: str,
        channel: str,
        kind: str,
        level: str,
        category: str | None,
        transcript: Iterable[Mapping[str, Any]],
    ) -> Escalation:
        """Open a new escalation with its alerts and audit event in one transaction.

        Unlike `record`, this validates strictly and always opens a new escalation:
        it is for callers that are not the conversation (tests, imports, tools).

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
        turns = _strict_transcript(transcript)
        assert category is not None
        now = utc_now()
        with self._engine.begin() as conn:
            escalation_id = self._insert_escalation(
                conn, conversation_id, channel, kind, level, category, turns, now
            )
        return self.get(escalation_id)

    def _insert_escalation(
        self,
        conn: Connection,
        conversation_id: str,
        channel: str,
        kind: str,
        level: str,
        category: str,
        transcript: list[dict[str, Any]],
        now: datetime,
        *,
        turn: str | None = None,
        decided_at: datetime | None = None,
        notes: Sequence[str] = (),
    ) -> str:
        escalation_id = str(uuid.uuid4())
        conn.execute(
            escalations.insert().values(
                id=escalation_id,
                conversation_id=conversation_id,
                conversation_key=stable_key(normalise_id(conversation_id) or UNKNOWN_CONVERSATION),
                channel=channel,
                kind=kind,
                level=level,
                category=category,
                status="open",
                created_at=now,
                transcript=transcript,
                turn=turn,
                decided_at=decided_at,
                last_alerted_at=now,
                reminders_sent=0,
            )
        )
        self._insert_outbox_rows(
            conn,
            escalation_id,
            "alert",
            self.alert_channels,
            now,
            level_rank=LEVEL_RANK[level],
            not_before=self._low_alert_slot(conn, now) if level == "low" else now,
        )
        note = f"{kind} {level}"
        if notes:
            note += "; " + "; ".join(notes)
        self._insert_event(conn, escalation_id, SYSTEM_ACTOR, "created", now, note)
        return escalation_id

    def _low_alert_slot(self, conn: Connection, now: datetime) -> datetime:
        """Return when a new low-level alert may go out under the per-minute cap."""
        if not self.low_alerts_per_minute or not self.alert_channels:
            return now
        waiting = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(outbox.c.status == "pending")
            .where(outbox.c.level_rank == LEVEL_RANK["low"])
            .where(outbox.c.purpose == "alert")
            .where(outbox.c.channel == self.alert_channels[0])
        ).scalar_one()
        minutes_ahead = int(waiting) // self.low_alerts_per_minute
        return now + timedelta(minutes=minutes_ahead)

    def get(self, escalation_id: str) -> Escalation:
        """Return one escalation or raise EscalationNotFoundError."""
        with self._engine.connect() as conn:
            row = conn.execute(
                escalations.select().where(escalations.c.id == escalation_id)
            ).first()
        if row is None:
            raise EscalationNotFoundError(f"no escalation with id {escalation_id!r}")
        return _row_to(Escalation, row)

    def find_by_decision(self, conversation_id: str, turn: str) -> Escalation | None:
        """Return the escalation a decision (conversation, turn) was stored in, if any."""
        with self._engine.connect() as conn:
            escalation_id = conn.execute(
                sa.select(escalation_decisions.c.escalation_id).where(
                    escalation_decisions.c.decision_key
                    == stable_key(normalise_id(conversation_id) or UNKNOWN_CONVERSATION, normalise_id(turn))
                )
            ).scalar()
        return None if escalation_id is None else self.get(str(escalation_id))

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

    # Contact -----------------------------------------------------------------------

    def record_contact(
        self,
        conversation_id: str,
        method: str,
        value: str,
        *,
        actor: str = "user",
        entry_id: str | None = None,
        at: datetime | None = None,
    ) -> Escalation:
        """Attach how the person agreed to be contacted to their open escalation.

        Earlier contacts stay in the history (`contact_history`); the escalation
        shows the latest. Only called after the person's consent.

        Args:
            conversation_id: The person's conversation; its unresolved escalation is used.
            method: 'phone' or 'email'.
            value: The number or address.
            actor: Who gave it, for the audit trail.
            entry_id: Unique id of this entry; storing it again changes nothing.
            at: When it was given (default: now).

        Raises:
            EscalationNotFoundError: The conversation has no escalation.
            InvalidTransitionError: Its escalations are all resolved.
        """
        _check_choice("contact method", method, CONTACT_METHODS)
        if not value or not value.strip():
            raise ValueError("contact value must not be empty")
        return self._change_contact(
            conversation_id, method, value.strip(), actor, entry_id, at
        )

    def withdraw_contact(
        self,
        conversation_id: str,
        *,
        actor: str = "user",
        entry_id: str | None = None,
        at: datetime | None = None,
    ) -> Escalation:
        """Clear the contact of the conversation's open escalation (history is kept)."""
        return self._change_contact(conversation_id, None, None, actor, entry_id, at)

    def apply_contact(self, request: ContactRequest) -> Escalation:
        """Store a contact entry made by the recorder (given or withdrawn)."""
        if request.method is None:
            return self.withdraw_contact(
                request.conversation_id, entry_id=request.entry_id, at=request.decided_at
            )
        return self.record_contact(
            request.conversation_id,
            request.method,
            request.value or "",
            entry_id=request.entry_id,
            at=request.decided_at,
        )

    def contact_history(self, escalation_id: str) -> list[ContactEntry]:
        """Return every contact given or withdrawn for an escalation, oldest first."""
        query = (
            escalation_contacts.select()
            .where(escalation_contacts.c.escalation_id == escalation_id)
            .order_by(escalation_contacts.c.id)
        )
        with self._engine.connect() as conn:
            return [_row_to(ContactEntry, row) for row in conn.execute(query)]

    def _change_contact(
        self,
        conversation_id: str,
        method: str | None,
        value: str | None,
        actor: str,
        entry_id: str | None,
        at: datetime | None,
    ) -> Escalation:
        at = at or utc_now()
        conversation_key = stable_key(normalise_id(conversation_id) or UNKNOWN_CONVERSATION)
        value = None if value is None else storable(value)
        entry_key = stable_key("contact", entry_id or str(uuid.uuid4()))
        with self._engine.begin() as conn:
            latest = conn.execute(
                sa.select(escalations.c.id, escalations.c.status)
                .where(escalations.c.conversation_key == conversation_key)
                .order_by(
                    escalations.c.status.in_(UNRESOLVED).desc(),
                    escalations.c.created_at.desc(),
                )
                .limit(1)
            ).first()
            if latest is None:
                raise EscalationNotFoundError("this conversation has no escalation")
            escalation_id, status = str(latest.id), latest.status
            replayed = conn.execute(
                sa.select(escalation_contacts.c.escalation_id).where(
                    escalation_contacts.c.entry_key == entry_key
                )
            ).scalar()
            if replayed is not None:
                return self.get(str(replayed))
            if status not in UNRESOLVED:
                raise InvalidTransitionError(
                    f"cannot record the contact on escalation {escalation_id}: "
                    f"it is {status!r}"
                )
            action = "given" if method else "withdrawn"
            conn.execute(
                escalation_contacts.insert().values(
                    entry_key=entry_key,
                    escalation_id=escalation_id,
                    action=action,
                    method=method,
                    value=value,
                    at=at,
                )
            )
            conn.execute(
                escalations.update()
                .where(escalations.c.id == escalation_id)
                .values(contact_method=method, contact_value=value)
            )
            # The value stays out of the audit note: notes are shown in more places.
            self._insert_event(
                conn,
                escalation_id,
                actor,
                "contact_recorded" if method else "contact_withdrawn",
                at,
                f"method={method}" if method else None,
            )
        return self.get(escalation_id)

    # Clinician actions -------------------------------------------------------------

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
        rows whose lease expired because the worker holding them crashed; rows for
        a destination paused by a 429 answer wait. Rows are taken urgent first,
        then priority, then low, oldest first within a level. Each claim counts as
        an attempt.

        Args:
            now: Current time (aware).
            limit: Maximum number of rows to claim.
            lease_seconds: How long the rows stay reserved for this caller.

        Returns:
            The claimed rows, status 'sending', in claim order, with the lease token
            to report back.
        """
        token = str(uuid.uuid4())
        paused = sa.exists().where(
            delivery_pauses.c.recipient == outbox.c.recipient,
            delivery_pauses.c.channel == outbox.c.channel,
            delivery_pauses.c.until > now,
        )
        due = sa.and_(
            sa.or_(
                sa.and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
                sa.and_(outbox.c.status == "sending", outbox.c.lease_until <= now),
            ),
            ~paused,
        )
        order = (outbox.c.level_rank, outbox.c.created_at, outbox.c.id)
        candidates = sa.select(outbox.c.id).where(due).order_by(*order).limit(limit)
        if self._dialect == "postgresql":
            # SKIP LOCKED lets concurrent workers take disjoint rows without waiting.
            candidates = candidates.with_for_update(skip_locked=True, of=outbox)
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
                outbox.select().where(outbox.c.lease_token == token).order_by(*order)
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
                f"{row.purpose} via {row.channel}"
                + ("" if row.recipient == PRIMARY else f" ({row.recipient} contact)"),
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
        count_attempt: bool = True,
    ) -> str | None:
        """Schedule a retry of a failed delivery, or dead-letter it after max attempts.

        Args:
            row: The claimed row, as returned by claim_due.
            error: Short description of the failure (never message content).
            next_attempt_at: When the row may be claimed again.
            max_attempts: Attempts after which the row is dead-lettered.
            now: Current time, for the audit event.
            count_attempt: False when the receiver asked us to wait (HTTP 429): that
                is not a failed attempt and must not bring the dead-letter closer.

        Returns:
            The new status ('pending' or 'dead'), or None if the lease was lost.
        """
        now = now or utc_now()
        error = error[:MAX_ERROR_LENGTH]
        dead = count_attempt and row.attempts >= max_attempts
        status = "dead" if dead else "pending"
        values: dict[str, Any] = {
            "status": status,
            "last_error": error,
            "lease_until": None,
        }
        if not dead:
            values["next_attempt_at"] = next_attempt_at
        if not count_attempt:
            values["attempts"] = outbox.c.attempts - 1
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

    def pause_destination(
        self, recipient: str, channel: str, until: datetime, reason: str
    ) -> None:
        """Hold every alert for one destination until ``until`` (it answered 429)."""
        with self._engine.begin() as conn:
            updated = conn.execute(
                delivery_pauses.update()
                .where(delivery_pauses.c.recipient == recipient)
                .where(delivery_pauses.c.channel == channel)
                .where(delivery_pauses.c.until < until)
                .values(until=until, reason=reason[:MAX_ERROR_LENGTH])
            )
            if updated.rowcount == 0:
                conn.execute(
                    self._insert(delivery_pauses)
                    .values(
                        recipient=recipient,
                        channel=channel,
                        until=until,
                        reason=reason[:MAX_ERROR_LENGTH],
                    )
                    .on_conflict_do_nothing(index_elements=["recipient", "channel"])
                )

    def paused_until(self, recipient: str, channel: str) -> datetime | None:
        """Return until when a destination is paused, if it ever was."""
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(delivery_pauses.c.until)
                .where(delivery_pauses.c.recipient == recipient)
                .where(delivery_pauses.c.channel == channel)
            ).scalar()

    def queue_overdue_reminders(
        self,
        now: datetime,
        ack_minutes: Mapping[str, float],
        primary_channels: Sequence[str],
        second_channels: Sequence[str] = (),
    ) -> int:
        """Queue a reminder for every open escalation whose level's interval has passed.

        An escalation is reminded again each interval until it is acknowledged or
        resolved; from the first reminder on, the second contact is paged too.

        Args:
            now: Current time (aware).
            ack_minutes: Reminder interval per level, e.g. {"urgent": 10,
                "priority": 60}; levels not listed are never reminded.
            primary_channels: Channels of the primary contact.
            second_channels: Channels of the second contact.

        Returns:
            Number of reminder rows queued.
        """
        for channel in (*primary_channels, *second_channels):
            _check_choice("reminder channel", channel, DELIVERY_CHANNELS)
        if not (primary_channels or second_channels):
            return 0
        since = sa.func.coalesce(escalations.c.last_alerted_at, escalations.c.created_at)
        overdue_levels = [
            sa.and_(escalations.c.level == level, since <= now - timedelta(minutes=minutes))
            for level, minutes in ack_minutes.items()
            if level in LEVELS and minutes and minutes > 0
        ]
        if not overdue_levels:
            return 0
        overdue = sa.select(
            escalations.c.id, escalations.c.level, escalations.c.reminders_sent
        ).where(escalations.c.status == "open", sa.or_(*overdue_levels))
        queued = 0
        with self._engine.begin() as conn:
            for escalation_id, level, sent in conn.execute(overdue).all():
                # Two workers may find the same escalation: only one advances the count.
                won = conn.execute(
                    escalations.update()
                    .where(escalations.c.id == escalation_id)
                    .where(escalations.c.reminders_sent == sent)
                    .values(reminders_sent=sent + 1, last_alerted_at=now)
                ).rowcount
                if won != 1:
                    continue
                purpose = f"reminder-{sent + 1}"
                inserted = self._insert_outbox_rows(
                    conn, escalation_id, purpose, primary_channels, now,
                    level_rank=LEVEL_RANK[level], stored_purpose="reminder",
                )
                inserted += self._insert_outbox_rows(
                    conn, escalation_id, purpose, second_channels, now,
                    level_rank=LEVEL_RANK[level], stored_purpose="reminder",
                    recipient=SECOND,
                )
                queued += inserted
                destinations = [*primary_channels, *(f"second {c}" for c in second_channels)]
                self._insert_event(
                    conn,
                    escalation_id,
                    SYSTEM_ACTOR,
                    "reminder_queued",
                    now,
                    f"reminder {sent + 1}: not acknowledged after "
                    f"{ack_minutes[level]:g} minutes; paging {', '.join(destinations)}",
                )
        return queued

    # Dead letters ------------------------------------------------------------------

    def record_quarantine(
        self, file_name: str, reason: str, entry_type: str | None, level: str | None
    ) -> None:
        """Note a spooled entry moved to quarantine, so the console can list it."""
        with self._engine.begin() as conn:
            conn.execute(
                quarantined_entries.insert().values(
                    file_name=file_name,
                    entry_type=(entry_type or "")[:32] or None,
                    level=level if level in LEVELS else None,
                    reason=reason[:MAX_ERROR_LENGTH],
                    at=utc_now(),
                )
            )

    def list_dead_letters(self) -> list[DeadLetter]:
        """Return dead alerts and quarantined spool entries, most recent first."""
        dead_rows = (
            sa.select(outbox, escalations.c.level)
            .join(escalations, escalations.c.id == outbox.c.escalation_id)
            .where(outbox.c.status == "dead")
        )
        with self._engine.connect() as conn:
            letters = [
                DeadLetter(
                    source="outbox",
                    reference=str(row.id),
                    escalation_id=row.escalation_id,
                    level=row.level,
                    detail=f"{row.purpose} via {row.channel}"
                    + ("" if row.recipient == PRIMARY else f" ({row.recipient} contact)"),
                    reason=row.last_error or "",
                    at=row.lease_until or row.next_attempt_at,
                )
                for row in conn.execute(dead_rows)
            ]
            letters.extend(
                DeadLetter(
                    source="spool",
                    reference=row.file_name,
                    escalation_id=None,
                    level=row.level,
                    detail=row.entry_type or "unreadable entry",
                    reason=row.reason,
                    at=row.at,
                )
                for row in conn.execute(quarantined_entries.select())
            )
        return sorted(letters, key=lambda letter: letter.at, reverse=True)

    # Helpers -------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table) if self._dialect == "postgresql" else sqlite.insert(table)

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
        *,
        level_rank: int = 0,
        not_before: datetime | None = None,
        stored_purpose: str | None = None,
        recipient: str = PRIMARY,
    ) -> int:
        inserted = 0
        for channel in channels:
            # Two workers may queue the same reminder at once; the unique key keeps one.
            result = conn.execute(
                self._insert(outbox)
                .values(
                    escalation_id=escalation_id,
                    channel=channel,
                    purpose=stored_purpose or purpose,
                    idempotency_key=idempotency_key(escalation_id, purpose, channel, recipient),
                    status="pending",
                    attempts=0,
                    next_attempt_at=not_before or now,
                    created_at=now,
                    level_rank=level_rank,
                    recipient=recipient,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
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

    def _backfill_conversation_keys(self) -> None:
        """Give rows written by an older schema their conversation key."""
        with self._engine.begin() as conn:
            rows = conn.execute(
                sa.select(escalations.c.id, escalations.c.conversation_id).where(
                    escalations.c.conversation_key.is_(None)
                )
            ).all()
            for escalation_id, conversation_id in rows:
                conn.execute(
                    escalations.update()
                    .where(escalations.c.id == escalation_id)
                    .values(conversation_key=stable_key(conversation_id))
                )
