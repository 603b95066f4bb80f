"""Small database helpers shared by the project's stores."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def create_tables(metadata: sa.MetaData, engine: Engine) -> None:
    """Creates missing tables, tolerating another process creating them at the same moment.

    `make run` starts several processes that open the same database at once;
    the second CREATE TABLE of a race fails on SQLite and PostgreSQL alike. A
    second pass then finds the tables and does nothing.
    """
    try:
        metadata.create_all(engine)
    except sa.exc.DatabaseError:
        metadata.create_all(engine)
