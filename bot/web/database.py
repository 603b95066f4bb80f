"""The console's own tables (sign-outs, sign-in attempts) in the escalation database.

They live beside the escalations so that a restart or a second worker sees the
same sign-outs and the same failed sign-in count: a limit kept in memory is
reset by restarting the process, and a signed-out cookie would work again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.db import create_tables
from bot.escalation.store import UTCDateTime

SUPPORTED_DIALECTS = ("sqlite", "postgresql")
# Long enough for another process's short write to finish on SQLite, which locks the whole file.
SQLITE_BUSY_TIMEOUT_SECONDS = 15

metadata = sa.MetaData()

revoked_sessions = sa.Table(
    "console_revoked_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
)

# One row per throttle key: concurrent sign-ins on one key queue on its row lock,
# so counting the attempts and adding one is a single step (see bot.web.throttle).
sign_in_keys = sa.Table(
    "console_sign_in_keys",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("last_attempt_at", UTCDateTime(), nullable=False, index=True),
)

sign_in_attempts = sa.Table(
    "console_sign_in_attempts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Index("ix_console_sign_in_attempts_key_at", "key", "at"),
)


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the console read while the bot and the worker write the same file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_console_engine(db_url: str, schema: str | None = None) -> Engine:
    """Connect to the escalation database and create the console's tables if missing.

    Args:
        db_url: SQLAlchemy URL of the escalation database (SQLite or PostgreSQL).
        schema: PostgreSQL schema of the tables (default: the search path).

    Returns:
        An engine for the console's reads and its own tables.
    """
    url = sa.engine.make_url(db_url)
    dialect = url.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise ValueError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
    connect_args: dict[str, Any] = {}
    if dialect == "sqlite":
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_SECONDS
    engine = sa.create_engine(url, future=True, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)
    if dialect == "sqlite":
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
    if schema:
        engine = engine.execution_options(schema_translate_map={None: schema})
    create_tables(metadata, engine)
    return engine
