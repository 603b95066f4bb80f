"""Read queries for the clinician console: pages of escalations, filters and queue counts.

The list never reads transcripts or contact details: a page of a few hundred
escalations would otherwise carry every conversation over the wire and through
memory, while a clinician reads one at a time (EscalationStore.get).

Pages are keyset-paged: the cursor names the last row shown, so an escalation
raised or resolved while a clinician pages does not shift the next page and
make another one skipped or shown twice.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.escalation.store import LEVELS, STATUSES, escalations

# Urgent before priority before low: the order of LEVELS.
LEVEL_RANK = sa.case(
    {level: rank for rank, level in enumerate(LEVELS)},
    value=escalations.c.level,
    else_=len(LEVELS),
)
TRIAGE = "triage"
RECENTLY_RESOLVED = "recently_resolved"
MAX_CURSOR_LENGTH = 512

SUMMARY_COLUMNS = (
    escalations.c.id,
    escalations.c.kind,
    escalations.c.level,
    escalations.c.category,
    escalations.c.status,
    escalations.c.channel,
    escalations.c.created_at,
    escalations.c.acknowledged_at,
    escalations.c.acknowledged_by,
    escalations.c.resolved_at,
    escalations.c.resolved_by,
    (escalations.c.contact_method.is_not(None)).label("has_contact"),
)


class InvalidCursorError(ValueError):
    """A page cursor this module did not make for the same order."""


@dataclass(frozen=True)
class EscalationFilter:
    """Which escalations to list; None matches everything."""

    status: str | None = "open"
    level: str | None = None
    category: str | None = None
    channel: str | None = None

    def __post_init__(self) -> None:
        """Refuse a status the store does not know (the caller checks the other values)."""
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")

    @property
    def order(self) -> str:
        """Resolved escalations are listed most recently resolved first; others in triage order."""
        return RECENTLY_RESOLVED if self.status == "resolved" else TRIAGE


@dataclass(frozen=True)
class EscalationSummary:
    """An escalation as listed: no transcript, no contact details."""

    id: str
    kind: str
    level: str
    category: str
    status: str
    channel: str
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    has_contact: bool


@dataclass(frozen=True)
class EscalationPage:
    """One page of a filtered list, the number matching the filter and where the next page starts."""

    items: list[EscalationSummary]
    total: int
    next_cursor: str | None


@dataclass(frozen=True)
class QueueSummary:
    """What waits: open escalations by level, the oldest open one, and those taken on."""

    open_by_level: dict[str, int] = field(default_factory=dict)
    oldest_open_at: datetime | None = None
    acknowledged: int = 0

    @property
    def open(self) -> int:
        """Return the number of open escalations."""
        return sum(self.open_by_level.values())


def _order_keys(order: str) -> list[tuple[Any, bool]]:
    """Return (expression, ascending) pairs; the id last makes the order total."""
    if order == RECENTLY_RESOLVED:
        return [(escalations.c.resolved_at, False), (escalations.c.id, False)]
    return [(LEVEL_RANK, True), (escalations.c.created_at, True), (escalations.c.id, True)]


def _cursor_values(order: str, item: EscalationSummary) -> list[Any]:
    if order == RECENTLY_RESOLVED:
        return [item.resolved_at.isoformat() if item.resolved_at else None, item.id]
    rank = LEVELS.index(item.level) if item.level in LEVELS else len(LEVELS)
    return [rank, item.created_at.isoformat(), item.id]


def encode_cursor(order: str, values: Sequence[Any]) -> str:
    """Return an opaque cursor for the row with these order values."""
    payload = json.dumps({"o": order, "k": list(values)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(order: str, cursor: str) -> list[Any]:
    """Return the order values in ``cursor``, checked to fit ``order``.

    Raises:
        InvalidCursorError: The cursor is malformed, or made for another order.
    """
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursorError("cursor too long")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidCursorError("cursor is not one this console made") from None
    if not isinstance(data, dict) or data.get("o") != order or not isinstance(data.get("k"), list):
        raise InvalidCursorError("cursor belongs to another list")
    values = data["k"]
    try:
        if order == RECENTLY_RESOLVED:
            resolved_at, escalation_id = values
            parsed = [datetime.fromisoformat(resolved_at), escalation_id]
        else:
            rank, created_at, escalation_id = values
            if not isinstance(rank, int) or isinstance(rank, bool):
                raise TypeError
            parsed = [rank, datetime.fromisoformat(created_at), escalation_id]
    except (TypeError, ValueError):
        raise InvalidCursorError("cursor values are malformed") from None
    if not isinstance(escalation_id, str) or parsed[-2].tzinfo is None:
        raise InvalidCursorError("cursor values are malformed")
    return parsed


def _after(keys: list[tuple[Any, bool]], values: Sequence[Any]) -> Any:
    """Return the condition "comes after these values" in the order ``keys``.

    Spelled out as (a > x) OR (a = x AND b > y) ..., which both SQLite and
    PostgreSQL evaluate, whatever the mix of ascending and descending keys.
    """
    clauses = []
    for position, (expression, ascending) in enumerate(keys):
        equal_before = [keys[i][0] == values[i] for i in range(position)]
        beyond = expression > values[position] if ascending else expression < values[position]
        clauses.append(sa.and_(*equal_before, beyond))
    return sa.or_(*clauses)


class ConsoleQueries:
    """Answers the console's questions about escalations without loading what it does not show."""

    def __init__(self, engine: Engine) -> None:
        """Read the escalation tables through ``engine`` (its schema map applies)."""
        self._engine = engine

    @staticmethod
    def _where(query: Any, which: EscalationFilter) -> Any:
        for column, value in (
            (escalations.c.status, which.status),
            (escalations.c.level, which.level),
            (escalations.c.category, which.category),
            (escalations.c.channel, which.channel),
        ):
            if value is not None:
                query = query.where(column == value)
        return query

    def page(self, which: EscalationFilter, limit: int, cursor: str | None = None) -> EscalationPage:
        """Return up to ``limit`` escalations matching ``which``, after ``cursor``.

        Raises:
            InvalidCursorError: ``cursor`` was not made by this class for this order.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        keys = _order_keys(which.order)
        query = self._where(sa.select(*SUMMARY_COLUMNS), which)
        if cursor:
            query = query.where(_after(keys, decode_cursor(which.order, cursor)))
        query = query.order_by(*(expr.asc() if ascending else expr.desc() for expr, ascending in keys))
        count = self._where(sa.select(sa.func.count()).select_from(escalations), which)
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(limit + 1)).all()
            total = conn.execute(count).scalar_one()
        items = [EscalationSummary(**dict(row._mapping)) for row in rows[:limit]]
        next_cursor = (
            encode_cursor(which.order, _cursor_values(which.order, items[-1])) if len(rows) > limit else None
        )
        return EscalationPage(items=items, total=total, next_cursor=next_cursor)

    def queue_summary(self) -> QueueSummary:
        """Return how many escalations are open (by level) and acknowledged, and the oldest open one."""
        with self._engine.connect() as conn:
            by_level = conn.execute(
                sa.select(escalations.c.level, sa.func.count())
                .where(escalations.c.status == "open")
                .group_by(escalations.c.level)
            ).all()
            oldest = conn.execute(
                sa.select(escalations.c.created_at)
                .where(escalations.c.status == "open")
                .order_by(escalations.c.created_at)
                .limit(1)
            ).scalar()
            acknowledged = conn.execute(
                sa.select(sa.func.count()).select_from(escalations).where(escalations.c.status == "acknowledged")
            ).scalar_one()
        counts = {level: 0 for level in LEVELS}
        counts.update({level: count for level, count in by_level})
        return QueueSummary(open_by_level=counts, oldest_open_at=oldest, acknowledged=acknowledged)

    def channels(self) -> list[str]:
        """Return the chat channels escalations have come from, in alphabetical order."""
        with self._engine.connect() as conn:
            return list(
                conn.execute(sa.select(escalations.c.channel).distinct().order_by(escalations.c.channel)).scalars()
            )
