"""Small database helpers shared by the project's stores."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)


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


def upgrade_tables(
    metadata: sa.MetaData,
    engine: Engine,
    schema: str | None = None,
    obsolete_indexes: Sequence[str] = (),
) -> None:
    """Brings tables made by an older version up to ``metadata``, keeping their rows.

    Only additive changes are made, so a newer and an older process can share a
    database during a rolling restart: missing columns are added (nullable or
    with their server default), missing indexes are created, and on PostgreSQL
    VARCHAR columns that became TEXT are widened. The ``obsolete_indexes`` named
    are dropped (PostgreSQL cannot index very long values, so an index on a
    widened column must go). A race with another process doing the same is
    tolerated by checking again.
    """
    try:
        _upgrade(metadata, engine, schema, obsolete_indexes)
    except sa.exc.DatabaseError:
        _upgrade(metadata, engine, schema, obsolete_indexes)


def _upgrade(metadata: sa.MetaData, engine: Engine, schema: str | None, obsolete_indexes: Sequence[str]) -> None:
    inspector = sa.inspect(engine)
    preparer = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if not inspector.has_table(table.name, schema=schema):
                continue
            qualified = preparer.quote(table.name)
            if schema:
                qualified = f"{preparer.quote_schema(schema)}.{qualified}"
            existing = {column["name"]: column for column in inspector.get_columns(table.name, schema=schema)}
            for column in table.columns:
                if column.name not in existing:
                    _add_column(conn, engine, qualified, column)
                elif engine.dialect.name == "postgresql" and _widened_to_text(existing[column.name], column):
                    name = preparer.quote(column.name)
                    conn.execute(sa.text(f"ALTER TABLE {qualified} ALTER COLUMN {name} TYPE TEXT"))
                    logger.info("Widened %s.%s to TEXT.", table.name, column.name)
            indexed = {index["name"] for index in inspector.get_indexes(table.name, schema=schema)}
            for name in indexed.intersection(obsolete_indexes):
                conn.execute(sa.text(f"DROP INDEX {_qualified_index(preparer, schema, name)}"))
                logger.info("Dropped the obsolete index %s.", name)
            for index in table.indexes:
                if index.name not in indexed:
                    index.create(conn)
                    logger.info("Created the index %s.", index.name)


def _add_column(conn: sa.engine.Connection, engine: Engine, table: str, column: sa.Column) -> None:
    preparer = engine.dialect.identifier_preparer
    column_type = column.type.compile(dialect=engine.dialect)
    default = ""
    if column.server_default is not None:
        default_text = column.server_default.arg  # type: ignore[attr-defined]
        default = f" DEFAULT '{default_text}'" if isinstance(default_text, str) else ""
    not_null = " NOT NULL" if default and not column.nullable else ""
    name = preparer.quote(column.name)
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {column_type}{default}{not_null}"))
    logger.info("Added the column %s.%s.", column.table.name, column.name)


def _widened_to_text(existing: dict, column: sa.Column) -> bool:
    return isinstance(column.type, sa.Text) and isinstance(existing["type"], sa.String) and not isinstance(
        existing["type"], sa.Text
    )


def _qualified_index(preparer: sa.sql.compiler.IdentifierPreparer, schema: str | None, name: str) -> str:
    return f"{preparer.quote_schema(schema)}.{preparer.quote(name)}" if schema else preparer.quote(name)
