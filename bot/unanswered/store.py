"""The table of unanswered questions (any SQLAlchemy database; SQLite by default)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, List, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.db import create_tables
from bot.unanswered.decision import UnansweredQuestion

metadata = sa.MetaData()

# No conversation id, no time of day, no channel: nothing links a row to a person.
unanswered_questions = sa.Table(
    "unanswered_questions",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("received_on", sa.Date(), nullable=False, index=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("guessed_topic", sa.String(128)),
    sa.Column("topic_confidence", sa.Float()),
)


def _ensure_sqlite_directory(url: sa.engine.URL) -> None:
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not database.startswith(
        "file:"
    ):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class UnansweredStore:
    """Adds and lists unanswered questions; creates its table on first use."""

    def __init__(self, db_url: str, engine: Optional[Engine] = None) -> None:
        """Prepares the engine; nothing connects until the first read or write."""
        self.url = sa.engine.make_url(db_url)
        self._engine = engine or sa.create_engine(self.url, future=True, hide_parameters=True)
        self._schema_ready = False

    def create_schema(self) -> None:
        """Creates the table if it is missing."""
        if self._schema_ready:
            return
        _ensure_sqlite_directory(self.url)
        create_tables(metadata, self._engine)
        self._schema_ready = True

    def add(self, questions: Sequence[UnansweredQuestion]) -> None:
        """Stores the questions in one transaction."""
        if not questions:
            return
        self.create_schema()
        rows: List[dict[str, Any]] = [
            {
                "received_on": q.received_on,
                "reason": q.reason,
                "text": q.text,
                "guessed_topic": q.guessed_topic,
                "topic_confidence": q.topic_confidence,
            }
            for q in questions
        ]
        with self._engine.begin() as connection:
            connection.execute(unanswered_questions.insert(), rows)

    def questions(self, since: Optional[date] = None) -> List[UnansweredQuestion]:
        """The stored questions, oldest first, from `since` (inclusive) if given."""
        self.create_schema()
        table = unanswered_questions
        query = sa.select(
            table.c.received_on, table.c.reason, table.c.text, table.c.guessed_topic, table.c.topic_confidence
        ).order_by(table.c.received_on, table.c.id)
        if since is not None:
            query = query.where(table.c.received_on >= since)
        with self._engine.connect() as connection:
            return [UnansweredQuestion(**dict(row._mapping)) for row in connection.execute(query)]

    def dispose(self) -> None:
        """Closes pooled connections."""
        self._engine.dispose()
