"""Test doubles and handles shared by the escalation tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.escalation.store import EscalationStore, utc_now


@dataclass
class Database:
    """One isolated test database; hands out stores sharing it, like processes."""

    url: str
    schema: str | None = None
    stores: list[EscalationStore] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        """Return 'sqlite' or 'postgresql'."""
        return sa.engine.make_url(self.url).get_backend_name()

    def store(
        self, alert_channels: Sequence[str] = ("webhook",), **options: Any
    ) -> EscalationStore:
        """Return a new store (own engine) on this database; ``options`` go to the store."""
        store = EscalationStore(
            self.url, alert_channels=alert_channels, schema=self.schema, **options
        )
        self.stores.append(store)
        return store

    @property
    def standalone_url(self) -> str:
        """Return a URL that reaches this database's tables from another process."""
        if not self.schema:
            return self.url
        return f"{self.url}?options=-csearch_path%3D{self.schema}"

    def engine(self) -> sa.engine.Engine:
        """Return a raw engine on this database's tables, for low-level checks."""
        engine = sa.create_engine(self.url, future=True)
        if self.schema:
            engine = engine.execution_options(schema_translate_map={None: self.schema})
        return engine


class FakeClock:
    """Real UTC time plus an offset tests move forward, so retries need no sleeping."""

    def __init__(self) -> None:
        """Start at the real current time."""
        self.offset = timedelta()

    def __call__(self) -> datetime:
        """Return the shifted current time."""
        return utc_now() + self.offset

    def advance(self, **delta: float) -> None:
        """Move the clock forward by a timedelta given as keyword arguments."""
        self.offset += timedelta(**delta)
